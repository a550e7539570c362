"""A running hub node: engine, hub and servers started and stopped together."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from agentplex.background import cancel_and_wait
from agentplex.config import Settings
from agentplex.edges.redis import RedisEdge
from agentplex.edges.websocket import WebSocketEdge
from agentplex.hub import Hub
from agentplex.hub.drain import drain
from agentplex.rpc.server import GrpcServer
from agentplex.shutdown import Shutdown

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
    def ws_host(self) -> str:
        server = self.settings.server
        return server.ws_host or server.host

    @property
    def ws_url(self) -> str:
        scheme = "wss" if self.settings.tls.ws else "ws"
        return f"{scheme}://{self.ws_host}:{self.websocket.port}"

    async def start(self) -> None:
        await self.hub.start()
        server = self.settings.server
        self.grpc_port = await self.grpc.start(server.host, server.grpc_port)
        await self.websocket.start(self.ws_host, server.ws_port)
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
        """Stop within `server.shutdown_timeout`, stage by stage: refuse new gRPC calls (those
        in flight get `grace`), tell every session to drain while its connection is open,
        close the WebSocket and Redis edges, then `Hub.stop` requeues this node's tasks and
        ends the sessions. A stage that overruns is abandoned with a warning."""
        shutdown = Shutdown(self.settings.server.shutdown_timeout, log)
        closing = asyncio.ensure_future(self.grpc.stop(min(grace, shutdown.timeout)))
        await shutdown.stage("following the engine's health", cancel_and_wait(self._health))
        await shutdown.stage("draining agents", drain(self.hub))
        await shutdown.stage("closing the WebSocket edge", self.websocket.stop())
        if self.redis_edge is not None:
            await shutdown.stage("closing the Redis edge", self.redis_edge.stop())
        await self.hub.stop(shutdown)
        await shutdown.stage("closing the gRPC server", closing)

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
