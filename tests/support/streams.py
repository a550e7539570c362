"""Waiting in tests, always with a bound: for items of an async iterator, or for a condition
that the hub makes true in the background."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import TypeVar

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
