"""Hubs with the Redis edge on a private redis-server, and a Redis-only session client."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from google.protobuf import json_format

from agentplex.config import Settings
from agentplex.edges.redis import RedisEdge
from agentplex.node import HubNode
from agentplex.v1 import session_service_pb2 as ss
from tests.support.hubs import fast_settings

_prefixes = itertools.count(1)


def unique_prefix() -> str:
    """A prefix of its own per hub, so tests sharing one redis-server never hear each other."""
    return f"t{next(_prefixes)}-{time.monotonic_ns() % 10**6}:"


def edge_settings(url: str, prefix: str, **edge: Any) -> Settings:
    return fast_settings(
        redis_edge={"enabled": True, "url": url, "prefix": prefix, **edge},
        engine={"node_ttl": 3.0},
    )


async def until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.01)


def edge_of(node: HubNode) -> RedisEdge:
    assert node.redis_edge is not None
    return node.redis_edge


@asynccontextmanager
async def edge_hub(url: str, prefix: str, **edge: Any) -> AsyncIterator[HubNode]:
    """A hub node with the edge on, once the edge listens and leads."""
    async with HubNode(edge_settings(url, prefix, **edge)) as node:
        await until(lambda: edge_of(node).ready, what="the redis edge to be ready")
        yield node


class RedisAgent:
    """A client that speaks the session protocol over Redis only, as JSON frames."""

    def __init__(self, redis: aioredis.Redis, prefix: str, session_id: str) -> None:
        self.redis = redis
        self.inbound = f"{prefix}session:{session_id}:in"
        self.pubsub = redis.pubsub()
        self.outbound = f"{prefix}session:{session_id}:out"

    async def __aenter__(self) -> RedisAgent:
        await self.pubsub.subscribe(self.outbound)  # before the first frame, not to miss any
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.pubsub.aclose()

    async def send_raw(self, data: bytes | str) -> None:
        await self.redis.publish(self.inbound, data)

    async def send(self, ref: str = "", **frame: Any) -> None:
        message = json_format.ParseDict({"ref": ref, **frame}, ss.ConnectRequest())
        await self.send_raw(json_format.MessageToJson(message))

    async def read(self, timeout: float = 5.0) -> ss.ConnectResponse:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message is not None:
                return json_format.Parse(message["data"], ss.ConnectResponse())
        raise TimeoutError(f"no frame on {self.outbound} within {timeout}s")

    async def read_kind(self, kind: str, timeout: float = 5.0) -> ss.ConnectResponse:
        """The next frame of `kind`, skipping pings and others."""
        while True:
            frame = await self.read(timeout)
            if frame.WhichOneof("frame") == kind:
                return frame

    async def answer(self, ref: str, timeout: float = 5.0) -> ss.ConnectResponse:
        """The next frame echoing `ref`."""
        while True:
            frame = await self.read(timeout)
            if frame.ref == ref:
                return frame

    def keep_alive(self) -> asyncio.Task[None]:
        """Heartbeat in the background (no ref: no receipts), as a live agent would."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(0.2)
                await self.send(heartbeat={})

        return asyncio.create_task(beat())
