"""SessionService.Connect: a bidirectional stream carrying session frames both ways."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from agentplex.core.framing import CONNECT_BATCH, CONNECT_DELIVERIES, batched
from agentplex.hub import Hub
from agentplex.hub.connection import Connection
from agentplex.rpc.principal import presented
from agentplex.rpc.streams import write_outbox_during
from agentplex.v1 import agent_pb2, session_service_pb2 as ss

Context = grpc.aio.ServicerContext[Any, Any]


class SessionServicer:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def Connect(self, requests: AsyncIterator[ss.ConnectRequest], context: Context) -> None:
        connection = Connection(
            self.hub, agent_pb2.TRANSPORT_GRPC, principal=presented(context), peer=context.peer()
        )
        limit = self.hub.limits.max_batch
        try:
            await write_outbox_during(
                self._read(connection, requests),
                connection.outbox,
                context,
                deliveries_field=CONNECT_DELIVERIES,
                batch=lambda out: batched(out, CONNECT_BATCH, limit) if connection.batches else out,
            )
        finally:
            connection.detach()

    @staticmethod
    async def _read(connection: Connection, requests: AsyncIterator[ss.ConnectRequest]) -> None:
        try:
            await connection.serve(aiter(requests))
        except grpc.RpcError:
            connection.outbox.close("connection lost")
