"""Waiting in tests, always with a bound: for items of an async iterator, or for a condition
that the hub makes true in the background."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable, Sized
from typing import TypeVar

from agentplex.v1 import envelope_pb2

T = TypeVar("T")


async def take(source: AsyncIterable[T], count: int, timeout: float = 5.0) -> list[T]:
    """The first `count` items of `source`; TimeoutError if they take longer than `timeout`."""
    out: list[T] = []

    async def run() -> None:
        async for item in source:
            out.append(item)
            if len(out) == count:
                return

    await asyncio.wait_for(run(), timeout)
    return out


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Return once `predicate()` is true; TimeoutError if it is not within `timeout`."""

    async def poll() -> None:
        while not await predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


async def filled(items: Sized, count: int, timeout: float = 5.0) -> None:
    """Return once `items`, filled in the background, holds `count`; TimeoutError if it does
    not within `timeout`."""

    async def enough() -> bool:
        return len(items) >= count

    await until(enough, timeout)


async def reached(envelopes: list[envelope_pb2.Envelope], seq: int) -> bool:
    """Whether the last of `envelopes`, filled in the background, is at `seq` or past it
    (delivery is in order: what came before it on its channel has come)."""
    return bool(envelopes) and envelopes[-1].position.seq >= seq
