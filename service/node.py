"""A running hub node: engine, hub and servers started and stopped together."""

from __future__ import annotations

import logging
from types import TracebackType

from agentplex.config import Settings
from agentplex.edges.redis import RedisEdge
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
        self.grpc_port = 0

    @property
    def grpc_address(self) -> str:
        return f"{self.settings.server.host}:{self.grpc_port}"

    async def start(self) -> None:
        await self.hub.start()
        server = self.settings.server
        self.grpc_port = await self.grpc.start(server.host, server.grpc_port)
        if self.redis_edge is not None:
            await self.redis_edge.start()

    async def stop(self, grace: float = 2.0) -> None:
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
