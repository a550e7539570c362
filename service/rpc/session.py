"""SessionService.Connect: a bidirectional stream carrying session frames both ways."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc

from agentplex.core.outbox import Outbox, Overflow
from agentplex.errors import HubError, InvalidArgument
from agentplex.hub import Hub
from agentplex.hub.session import Session, error_frame
from agentplex.rpc.principal import principal_of
from agentplex.rpc.streams import write_outbox
from agentplex.v1 import agent_pb2, session_service_pb2 as ss

Context = grpc.aio.ServicerContext[Any, Any]


class SessionServicer:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def Connect(self, requests: AsyncIterator[ss.ConnectRequest], context: Context) -> None:
        outbox = Outbox(self.hub.limits.session_queue)
        holder: list[Session] = []
        reader = asyncio.create_task(self._read(requests, context, outbox, holder))
        try:
            await write_outbox(outbox, context, deliveries_field=3)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if holder:
                holder[0].detach(outbox)

    async def _read(
        self,
        requests: AsyncIterator[ss.ConnectRequest],
        context: Context,
        outbox: Outbox,
        holder: list[Session],
    ) -> None:
        ref = ""
        try:
            timeout = self.hub.settings.session.heartbeat_timeout
            try:
                first = await asyncio.wait_for(anext(aiter(requests)), timeout)
            except TimeoutError:
                raise InvalidArgument(
                    f"no hello within {timeout:g}s (session.heartbeat_timeout)"
                ) from None
            ref = first.ref
            session = await self.hub.sessions.hello(
                first, principal_of(context), agent_pb2.TRANSPORT_GRPC, outbox
            )
            holder.append(session)
            async for frame in requests:
                await session.handle(frame)
                if session.closed:
                    return
            outbox.close("client closed the stream")
        except StopAsyncIteration:
            outbox.close("client closed the stream before hello")
        except HubError as err:
            with contextlib.suppress(Overflow):
                outbox.put(error_frame(err, ref, fatal=True))
            outbox.close(err.message, err.code)
        except grpc.RpcError:
            outbox.close("connection lost")
