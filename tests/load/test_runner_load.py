"""Load: 50 CLI runners (in this process; each task a stand-in Codex CLI process taking a random
0.1-1 s) and 1,000 tasks through a real `agentplex serve`; every task completes exactly once.
Prints p50/p95 submit-to-result time and the hub's CPU and memory.

Run alone with: pytest tests/load/test_runner_load.py -m slow -s
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sys
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from agentplex.client import Client
from agentplex.config import KindSettings
from agentplex.runners import CliRunner
from tests.benchmarks.helpers import hub_process, percentile
from tests.support.standins import DIR, records

RUNNERS = 50
TASKS = 1000
PATH = f"{DIR}:{Path(sys.executable).parent}:/usr/bin:/bin"


async def sample_rss(proc: psutil.Process, peak: list[int]) -> None:
    while True:
        peak[0] = max(peak[0], proc.memory_info().rss)
        await asyncio.sleep(0.2)


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_fifty_runners_thousand_tasks_each_completed_once(tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    environ = {
        "PATH": PATH,
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "STANDIN_RECORD": str(record),
    }
    settings = replace(KindSettings(), env_allow="STANDIN_RECORD", timeout=120)
    with hub_process() as (hub, address):
        async with Client(address) as client, contextlib.AsyncExitStack() as stack:
            for i in range(RUNNERS):
                runner = CliRunner("codex", settings, environ=environ)
                card = runner.card(agent_id=f"codex-{i}", capabilities=["work"], version="load")
                session = await stack.enter_async_context(client.session(card))
                session.on_task(runner)
            latencies: list[float] = []
            # As many tasks in flight as runners: the time measured is the response time (a
            # stand-in's 0.1-1 s plus the hub, the runner and the process start), not queueing.
            limit = asyncio.Semaphore(RUNNERS)

            async def one(i: int) -> str:
                async with limit:
                    start = time.perf_counter()
                    handle = await client.submit(f"slow task {i}", require=["work"])
                    result = await handle.result()
                    latencies.append(time.perf_counter() - start)
                    assert result.data == f"codex answer: slow task {i}".encode()
                    return handle.id

            peak = [0]
            sampler = asyncio.create_task(sample_rss(hub, peak))
            me = psutil.Process()
            cpu_before, mine_before = sum(hub.cpu_times()[:2]), sum(me.cpu_times()[:2])
            began = time.perf_counter()
            ids = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(TASKS))), 540)
            elapsed = time.perf_counter() - began
            hub_cpu = sum(hub.cpu_times()[:2]) - cpu_before
            runners_cpu = sum(me.cpu_times()[:2]) - mine_before
            sampler.cancel()
            tasks = await client.list_tasks()
    runs = collections.Counter(r["env"]["AGENTPLEX_TASK_ID"] for r in records(record))
    assert len(set(ids)) == TASKS
    assert sorted(runs) == sorted(ids) and set(runs.values()) == {1}
    assert all(t.state == 5 and t.attempt == 1 for t in tasks)  # COMPLETED, first attempt
    ordered = sorted(latencies)
    print(
        f"\nCLI runner load: runners={RUNNERS}, tasks={TASKS}, "
        f"tasks_per_s={TASKS / elapsed:.1f}, "
        f"p50_ms={percentile(ordered, 50) * 1000:.0f}, "
        f"p95_ms={percentile(ordered, 95) * 1000:.0f}, "
        f"hub_cpu_s={hub_cpu:.1f}, hub_cpu_util={hub_cpu / elapsed:.2f}, "
        f"hub_peak_rss_mb={peak[0] / 2**20:.0f}, runners_cpu_util={runners_cpu / elapsed:.2f} "
        "(stand-in CLI takes 0.1-1 s per task)"
    )
