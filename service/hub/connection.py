"""One transport connection carrying a session, whatever the transport.

The first client frame must be hello (within `session.heartbeat_timeout`); later frames go to
the `Session`; a refused hello or a fatal refusal ends the connection with an error frame. The
transport feeds client frames in and writes what `outbox` yields, so gRPC and the Redis edge run
the very same session logic.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from agentplex.core.outbox import Outbox, Overflow
from agentplex.core.principal import Principal
from agentplex.errors import HubError, InvalidArgument
from agentplex.hub.session import Session, error_frame
from agentplex.v1 import agent_pb2, session_service_pb2 as ss

if TYPE_CHECKING:
    from agentplex.hub.hub import Hub


TRANSPORT_NAMES = {
    agent_pb2.TRANSPORT_GRPC: "grpc",
    agent_pb2.TRANSPORT_WEBSOCKET: "websocket",
    agent_pb2.TRANSPORT_REDIS: "redis",
}


class Connection:
    """`principal`: the caller, when the transport authenticated it already; otherwise the
    transport's `token` (a header, a query parameter) or the hello frame's is checked."""

    def __init__(
        self,
        hub: Hub,
        transport: agent_pb2.Transport.ValueType,
        *,
        principal: Principal | None = None,
        token: str = "",
        peer: str = "",
    ) -> None:
        self.hub = hub
        self.principal = principal
        self.token = token
        self.peer = peer
        self.transport = transport
        self.outbox = Outbox(hub.limits.session_queue)
        self.session: Session | None = None
        self.batches = False  # the client's hello says it reads batch frames

    async def serve(self, requests: AsyncIterator[ss.ConnectRequest]) -> None:
        """Hand client frames to the session until the client stops or the session ends."""
        ref = ""
        try:
            timeout = self.hub.settings.session.heartbeat_timeout
            try:
                first = await asyncio.wait_for(anext(requests), timeout)
            except TimeoutError:
                raise InvalidArgument(
                    f"no hello within {timeout:g}s (session.heartbeat_timeout)"
                ) from None
            ref = first.ref
            self.batches = first.hello.batches
            if self.principal is None:
                self.principal = self.hub.auth.authenticate(
                    self.token or first.hello.token, TRANSPORT_NAMES[self.transport], self.peer
                )
            session = self.session = await self.hub.sessions.hello(
                first, self.principal, self.transport, self.outbox
            )
            async for frame in requests:
                await session.handle(frame)
                if session.closed:
                    return
            self.outbox.close("client closed the stream")
        except StopAsyncIteration:
            self.outbox.close("client closed the stream before hello")
        except HubError as err:
            self.refuse(err, ref, fatal=True)

    def refuse(self, err: HubError, ref: str = "", *, fatal: bool = False) -> None:
        """Answer with an error frame echoing `ref`; a fatal one ends the connection."""
        with contextlib.suppress(Overflow):
            self.outbox.put(error_frame(err, ref, fatal=fatal))
        if fatal:
            self.outbox.close(err.message, err.code)

    def detach(self) -> None:
        """The transport is gone: a started session waits out its grace period for a resume."""
        if self.session is not None:
            self.session.detach(self.outbox)
