"""A running hub node: engine, hub and servers started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from agentplex.config import Settings
from agentplex.edges.redis import RedisEdge
from agentplex.edges.websocket import WebSocketEdge
from agentplex.hub import Hub
from agentplex.rpc.server import GrpcServer

log = logging.getLogger("agentplex")


class HubNode:
    """`async with HubNode(settings) as node:` serves until the block ends."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hub = Hub(settings)
        self.grpc = GrpcServer(self.hub)
        self.redis_edge = RedisEdge(self.hub) if settings.redis_edge.enabled else None
        self.websocket = WebSocketEdge(self.hub)
        self.grpc_port = 0
        self._health: asyncio.Task[None] | None = None

    @property
    def grpc_address(self) -> str:
        return f"{self.settings.server.host}:{self.grpc_port}"

    @property
    def ws_url(self) -> str:
        scheme = "wss" if self.settings.tls.ws else "ws"
        return f"{scheme}://{self.settings.server.host}:{self.websocket.port}"

    async def start(self) -> None:
        await self.hub.start()
        server = self.settings.server
        self.grpc_port = await self.grpc.start(server.host, server.grpc_port)
        await self.websocket.start(server.host, server.ws_port)
        if self.redis_edge is not None:
            await self.redis_edge.start()
        self._health = asyncio.get_running_loop().create_task(self._follow_engine())

    async def _follow_engine(self) -> None:
        """NOT_SERVING while the engine cannot reach its storage, SERVING again after."""
        serving = True
        while True:
            await asyncio.sleep(self.settings.session.tick)
            if self.hub.engine.available != serving:
                serving = self.hub.engine.available
                await self.grpc.set_serving(serving)

    async def stop(self, grace: float = 2.0) -> None:
        if self._health is not None:
            self._health.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health
        await self.websocket.stop()
        await self.grpc.stop(grace)
        if self.redis_edge is not None:
            await self.redis_edge.stop()
        await self.hub.stop()

    async def __aenter__(self) -> HubNode:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop(grace=0.5)
