"""Many WebSocket sessions at once, for load tests and memory benchmarks: each says hello (and
optionally subscribes) in JSON and then stays idle until closed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect


async def open_sessions(
    url: str, count: int, *, subscribe: str = "", compression: str | None = "deflate"
) -> list[ClientConnection]:
    """`count` sessions on `url` (the /v1/connect URL), opened a few hundred at a time."""
    gate = asyncio.Semaphore(200)

    async def one(i: int) -> ClientConnection:
        async with gate:
            ws = await connect(url, compression=compression, open_timeout=60, ping_interval=None)
            await ws.send(json.dumps({"ref": "h", "hello": {}}))
            assert "error" not in await answer(ws, "h", timeout=60)
            if subscribe:
                await ws.send(json.dumps({"ref": "s", "subscribe": {"channels": [subscribe]}}))
                assert "error" not in await answer(ws, "s", timeout=60)
            return ws

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def answer(ws: ClientConnection, ref: str = "", timeout: float = 5) -> dict[str, Any]:
    """The hub's JSON answer to the frame `ref` (or, without one, its next error), skipping
    pings and frames of the hub's own (an agent's inbox subscription receipt)."""
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame.get("ref", "") == ref and ("error" in frame or ref):
            return frame


async def next_delivery(ws: ClientConnection) -> dict[str, Any]:
    """The first envelope of the next deliveries frame (pings skipped)."""
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if "deliveries" in frame:
            envelope: dict[str, Any] = frame["deliveries"]["deliveries"][0]["envelope"]
            return envelope


async def close_all(sessions: list[ClientConnection]) -> None:
    await asyncio.gather(*(ws.close() for ws in sessions), return_exceptions=True)
