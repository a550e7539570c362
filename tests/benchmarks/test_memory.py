"""Resident memory (RSS) of an idle `agentplex serve`, read with psutil. No fixed target: the
figures are MB after startup, MB with 1,000 idle connections of one kind, and KB per connection.

- subscriptions: 1,000 `MessagingService.Subscribe` streams, each on its own channel, from one
  client (one HTTP/2 connection);
- sessions: 1,000 `SessionService.Connect` sessions, each registering an agent (so each also has
  a registry record, an inbox subscription with acks and a `_sys.agents` event in history).

The benchmark times opening the 1,000 streams (one round; `ms_per_open` in extra_info). RSS is
read after the hub settles (no growth for a moment), and once more after the streams are closed.
Each test starts its own hub so the figures do not depend on what ran before.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psutil
import pytest

from agentplex.client import Client, Session, Subscription
from agentplex.v1 import agent_pb2
from tests.benchmarks.helpers import hub_process, report, round_seconds, sized
from tests.support import ws_sessions
from tests.support.hubs import serve_process

COUNT = 1000
WINDOW = 100  # streams opened concurrently
MB = 1024 * 1024


def settled_rss(proc: psutil.Process, runner: asyncio.Runner, limit: float = 5.0) -> int:
    """RSS once two reads 0.3 s apart agree within 64 KB (or after `limit` seconds)."""
    deadline = time.monotonic() + limit
    last = int(proc.memory_info().rss)
    while time.monotonic() < deadline:
        runner.run(asyncio.sleep(0.3))  # keep the client's loop serving its streams
        now = int(proc.memory_info().rss)
        if abs(now - last) < 64 * 1024:
            return now
        last = now
    return last


def memory_figures(
    benchmark: Any, count: int, start: int, loaded: int, closed: int, elapsed: float
) -> dict[str, Any]:
    rounds = round_seconds(benchmark)
    seconds = rounds["median"] if rounds else elapsed
    return {
        "connections": count,
        "rss_start_mb": round(start / MB, 1),
        "rss_loaded_mb": round(loaded / MB, 1),
        "kb_per_connection": round((loaded - start) / count / 1024, 1),
        "rss_after_close_mb": round(closed / MB, 1),
        "ms_per_open": round(seconds / count * 1000, 3),
    }


async def drain(subscription: Subscription) -> None:
    async for _ in subscription:
        pass


@pytest.mark.benchmark(group="memory")
def test_idle_memory_subscriptions(benchmark: Any, runner: asyncio.Runner) -> None:
    count = sized(benchmark, COUNT, WINDOW)
    with hub_process() as (proc, address):
        client: Client = runner.run(_connect(address))
        start = settled_rss(proc, runner)
        subscriptions: list[Subscription] = []
        readers: list[asyncio.Task[None]] = []

        async def open_all() -> None:
            for first in range(0, count, WINDOW):
                batch = [client.subscribe(f"idle.{i}") for i in range(first, first + WINDOW)]
                readers.extend(asyncio.get_running_loop().create_task(drain(s)) for s in batch)
                await asyncio.gather(*(asyncio.wait_for(s.ready.wait(), 30) for s in batch))
                subscriptions.extend(batch)

        began = time.perf_counter()
        benchmark.pedantic(lambda: runner.run(open_all()), rounds=1)
        elapsed = time.perf_counter() - began
        assert len(subscriptions) == count
        assert all(
            s.states and s.states[0].channel == f"idle.{i}" for i, s in enumerate(subscriptions)
        )
        loaded = settled_rss(proc, runner)

        async def close_all() -> None:
            for s in subscriptions:
                s.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            assert all(r.done() for r in readers)
            await client.close()

        runner.run(close_all())
        closed = settled_rss(proc, runner)
        assert proc.is_running()
    report(
        benchmark,
        f"idle hub RSS, {count:,} subscriptions",
        **memory_figures(benchmark, count, start, loaded, closed, elapsed),
    )


@pytest.mark.benchmark(group="memory")
def test_idle_memory_sessions(benchmark: Any, runner: asyncio.Runner) -> None:
    count = sized(benchmark, COUNT, WINDOW)
    with hub_process() as (proc, address):
        client: Client = runner.run(_connect(address))
        start = settled_rss(proc, runner)
        sessions: list[Session] = []

        async def open_all() -> None:
            for first in range(0, count, WINDOW):
                batch = [
                    client.session(
                        agent_pb2.AgentCard(
                            id=f"idle-{i}",
                            kind=agent_pb2.AGENT_KIND_CUSTOM,
                            capabilities=["python", "review"],
                        ),
                        reconnect=False,
                    )
                    for i in range(first, first + WINDOW)
                ]
                await asyncio.gather(*(asyncio.wait_for(s.connect(), 30) for s in batch))
                sessions.extend(batch)

        began = time.perf_counter()
        benchmark.pedantic(lambda: runner.run(open_all()), rounds=1)
        elapsed = time.perf_counter() - began
        assert [s.agent_id for s in sessions] == [f"idle-{i}" for i in range(count)]
        agents = runner.run(client.agents())
        assert len(agents) == count
        assert all(a.status == agent_pb2.AGENT_STATUS_ONLINE for a in agents)
        loaded = settled_rss(proc, runner)

        async def close_all() -> None:
            await asyncio.gather(*(s.close() for s in sessions))
            for _ in range(100):  # the hub forgets closed sessions in the background
                if not await client.agents():
                    break
                await asyncio.sleep(0.1)
            assert await client.agents() == []
            await client.close()

        runner.run(close_all())
        closed = settled_rss(proc, runner)
        assert proc.is_running()
    report(
        benchmark,
        f"idle hub RSS, {count:,} agent sessions",
        **memory_figures(benchmark, count, start, loaded, closed, elapsed),
    )


async def _connect(address: str) -> Client:
    client = Client(address)
    await client.wait_ready()
    return client


WS_COUNT = 10_000


@pytest.mark.benchmark(group="memory")
@pytest.mark.parametrize("compression", ["deflate", None], ids=["deflate", "no-compression"])
def test_idle_memory_websocket_sessions(
    benchmark: Any, runner: asyncio.Runner, compression: str | None
) -> None:
    """10,000 idle WebSocket sessions (hello, nothing else), with permessage-deflate negotiated
    or not. Target: under 30 KB per session with it."""
    count = sized(benchmark, WS_COUNT, WINDOW)
    idle = {
        "AGENTPLEX_SESSION__HEARTBEAT_TIMEOUT": "3600",
        "AGENTPLEX_SESSION__HEARTBEAT_INTERVAL": "600",
    }
    with serve_process("--log-level", "WARNING", env=idle) as (popen, _):
        proc = psutil.Process(popen.pid)
        start = settled_rss(proc, runner)
        sessions: list[Any] = []

        async def open_all() -> None:
            url = popen.ws_url  # type: ignore[attr-defined]
            sessions.extend(await ws_sessions.open_sessions(url, count, compression=compression))

        began = time.perf_counter()
        benchmark.pedantic(lambda: runner.run(open_all()), rounds=1)
        elapsed = time.perf_counter() - began
        assert len(sessions) == count
        loaded = settled_rss(proc, runner)
        runner.run(ws_sessions.close_all(sessions))
        closed = settled_rss(proc, runner)
        assert proc.is_running()
    report(
        benchmark,
        f"idle hub RSS, {count:,} WebSocket sessions, compression {compression or 'off'}",
        target_kb_per_connection=30 if compression else None,
        **memory_figures(benchmark, count, start, loaded, closed, elapsed),
    )
