"""Load: 2,000 concurrent WebSocket sessions on one `agentplex serve`, and one message published
over gRPC reaches every one of them.

Run alone with: pytest tests/load/test_websocket_sessions.py -m slow -s
"""

from __future__ import annotations

import asyncio
import base64
import time

import pytest

from agentplex.client import Client
from tests.support.hubs import serve_process
from tests.support.ws_sessions import close_all, next_delivery, open_sessions

SESSIONS = 2000


@pytest.mark.slow
async def test_two_thousand_websocket_sessions_all_receive_a_message() -> None:
    env = {
        "AGENTPLEX_SESSION__HEARTBEAT_TIMEOUT": "600",
        "AGENTPLEX_SESSION__HEARTBEAT_INTERVAL": "60",
    }
    with serve_process("--log-level", "WARNING", env=env) as (proc, address):
        started = time.monotonic()
        sessions = await open_sessions(proc.ws_url, SESSIONS, subscribe="everyone")  # type: ignore[attr-defined]
        opened = time.monotonic() - started
        try:
            async with Client(address) as client:
                sent = await client.publish("everyone", "hello, all")
                started = time.monotonic()
                got = await asyncio.gather(*(next_delivery(ws) for ws in sessions))
                fanned = time.monotonic() - started
            assert len(got) == SESSIONS
            assert {e["position"]["seq"] for e in got} == {str(sent.position.seq)}
            assert {base64.b64decode(e["payload"]) for e in got} == {b"hello, all"}
        finally:
            await close_all(sessions)
    print(
        f"{SESSIONS} WebSocket sessions: opened in {opened:.1f}s, fan-out to all in {fanned:.2f}s"
    )
