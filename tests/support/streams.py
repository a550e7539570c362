"""Reading from async iterators in tests, with a bound on the wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
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
