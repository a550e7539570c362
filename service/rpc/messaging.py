"""MessagingService over the hub."""

from __future__ import annotations

from typing import Any

import grpc

from agentplex.core import wire
from agentplex.core.outbox import Outbox
from agentplex.errors import InvalidArgument
from agentplex.hub import Hub
from agentplex.rpc.principal import principal_of
from agentplex.rpc.streams import write_outbox_during
from agentplex.v1 import agent_pb2, messaging_service_pb2 as ms, session_service_pb2 as ss

Context = grpc.aio.ServicerContext[Any, Any]


def _subscribe_control(frame: ss.ConnectResponse) -> ms.SubscribeResponse | None:
    if frame.WhichOneof("frame") == "receipt":
        return ms.SubscribeResponse(
            states=ms.SubscriptionStates(states=frame.receipt.subscriptions)
        )
    return None


class MessagingServicer:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def Publish(self, request: ms.PublishRequest, context: Context) -> bytes:
        if not request.HasField("envelope"):
            raise InvalidArgument("envelope is required")
        envelopes = [request.envelope]
        outcomes = await self.hub.publish(principal_of(context), envelopes)
        return wire.repeated(1, wire.publish_results(outcomes, envelopes))  # .result

    async def PublishBatch(self, request: ms.PublishBatchRequest, context: Context) -> bytes:
        outcomes = await self.hub.publish(principal_of(context), request.envelopes)
        return wire.repeated(1, wire.publish_results(outcomes))  # .results, unnamed

    async def Subscribe(self, request: ms.SubscribeRequest, context: Context) -> None:
        hub = self.hub
        session = hub.sessions.open(
            principal_of(context), agent_pb2.TRANSPORT_GRPC, resumable=False
        )
        outbox = Outbox(hub.limits.session_queue)
        session.attach(outbox)
        try:
            await write_outbox_during(
                session.subscribe(list(request.channels), list(request.since), ack=False),
                outbox,
                context,
                deliveries_field=1,
                control=_subscribe_control,
            )
        finally:
            session.end("subscription stream ended")

    async def History(self, request: ms.HistoryRequest, context: Context) -> bytes:
        since = request.since if request.HasField("since") else None
        page = await self.hub.history(principal_of(context), request.channel, since, request.limit)
        head = ms.HistoryResponse(recovered=page.recovered)
        head.position.seq, head.position.epoch = page.top, page.epoch
        # Envelopes are appended in their stored encoding (field 1), not re-encoded.
        parts = [wire.field_header(1, len(e.wire)) + e.wire for e in page.entries]
        return b"".join(parts) + head.SerializeToString()
