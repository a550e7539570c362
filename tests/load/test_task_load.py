"""Load: 50 concurrent agents (one swarm process) and 1,000 tasks through a real
`agentplex serve`; every task completes exactly once. Prints p50/p95 submit-to-result time.

Run alone with: pytest tests/load -m slow -s
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time

import pytest

from agentplex.client import Client
from tests.support.hubs import serve_process

AGENTS = 50
TASKS = 1000


@pytest.mark.slow
async def test_fifty_agents_thousand_tasks_each_completed_once() -> None:
    with serve_process() as (_, hub):
        swarm = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.swarm",
                "--hub",
                hub,
                "--agents",
                str(AGENTS),
                "--min-delay",
                "0.01",
                "--max-delay",
                "0.05",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert swarm.stdout is not None
            assert swarm.stdout.readline().strip() == "ready"
            async with Client(hub) as client:
                limit = asyncio.Semaphore(200)
                latencies: list[float] = []

                async def one(i: int) -> str:
                    async with limit:
                        start = time.perf_counter()
                        handle = await client.submit(f"task {i}", require=["work"])
                        result = await handle.result()
                        latencies.append(time.perf_counter() - start)
                        assert result.data == f"task {i}".encode()
                        return handle.id

                began = time.perf_counter()
                ids = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(TASKS))), 240)
                elapsed = time.perf_counter() - began
                tasks = await client.list_tasks()
        finally:
            swarm.terminate()
            out, _ = swarm.communicate(timeout=30)
        runs: dict[str, int] = json.loads(out.strip().splitlines()[-1])
    assert len(set(ids)) == TASKS
    assert all(t.state == 5 and t.attempt == 1 for t in tasks)  # COMPLETED, first attempt
    assert sorted(runs) == sorted(ids) and set(runs.values()) == {1}
    q = statistics.quantiles(latencies, n=100)
    print(
        f"\n{TASKS} tasks, {AGENTS} agents: {TASKS / elapsed:.0f} tasks/s, submit-to-result "
        f"p50 {q[49] * 1000:.1f} ms, p95 {q[94] * 1000:.1f} ms (agents take 10-50 ms per task)"
    )
