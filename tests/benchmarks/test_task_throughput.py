"""End-to-end tasks per second over gRPC with 100 agents. Target: above 3,000 tasks/s.

An `agentplex serve` subprocess, 100 SDK agents in a second process (tests/support/swarm.py,
no work per task), and the submitter in the test process: it submits N tasks with a window of
submits in flight and counts completions on the system channel `_sys.tasks` (the `state` header
says COMPLETED). A round is submit-first to last-completed. Submits go either as calls
(`Client.submit`, a TaskService.SubmitTask call each) or as frames on one session
(`Session.submit`). The CPU of the hub and of the whole machine are reported too: the three
processes share its two cores.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

import psutil
import pytest

from agentplex.client import Client
from tests.benchmarks.helpers import hub_process, report, sized

AGENTS = 100
WINDOW = 256


async def one_round(hub: str, count: int, via: str) -> float:
    async with Client(hub) as client, client.session() as session:
        submitter = client if via == "call" else session
        events = client.subscribe("_sys.tasks")
        done: set[str] = set()
        finished = asyncio.Event()

        async def follow() -> None:
            async for env in events:
                if env.headers["state"] == "COMPLETED":
                    done.add(env.headers["task"])
                    if len(done) == count:
                        finished.set()
                        return

        follower = asyncio.create_task(follow())
        await asyncio.wait_for(events.ready.wait(), 10)
        window = asyncio.Semaphore(WINDOW)
        submitted: list[str] = []

        async def submit(i: int) -> None:
            async with window:
                handle = await submitter.submit(f"t{i}", require=["work"])
                submitted.append(handle.id)

        start = time.perf_counter()
        await asyncio.gather(*(submit(i) for i in range(count)))
        await asyncio.wait_for(finished.wait(), 120)
        elapsed = time.perf_counter() - start
        events.cancel()
        follower.cancel()
        assert done == set(submitted) and len(done) == count
        return elapsed


@pytest.mark.benchmark(group="tasks")
@pytest.mark.parametrize("via", ["call", "session"])
def test_end_to_end_tasks_per_second_with_100_agents(
    benchmark: Any, runner: asyncio.Runner, via: str
) -> None:
    count = sized(benchmark, 5000, 300)
    with hub_process() as (hub_proc, hub):
        swarm = subprocess.Popen(
            [sys.executable, "-m", "tests.support.swarm", "--hub", hub, "--agents", str(AGENTS)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert swarm.stdout is not None and swarm.stdout.readline().strip() == "ready"
            rounds: list[float] = []
            cpu_before, machine_before = hub_proc.cpu_times(), psutil.cpu_times()

            def run() -> None:
                rounds.append(runner.run(one_round(hub, count, via)))

            benchmark.pedantic(run, rounds=3 if benchmark.enabled else 1, iterations=1)
            cpu_after, machine_after = hub_proc.cpu_times(), psutil.cpu_times()
        finally:
            swarm.terminate()
            swarm.communicate(timeout=30)
    hub_cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    busy = sum(machine_after) - sum(machine_before)
    busy -= (machine_after.idle - machine_before.idle) + (
        machine_after.iowait - machine_before.iowait
    )
    best = min(rounds)
    report(
        benchmark,
        f"end-to-end tasks with {AGENTS} agents over gRPC, submitted by {via}",
        target_tasks_per_s=3000,
        tasks_per_round=count,
        tasks_per_s_median=round(count / sorted(rounds)[len(rounds) // 2]),
        tasks_per_s_best=round(count / best),
        hub_cpu_us_per_task=round(hub_cpu / (count * len(rounds)) * 1e6),
        machine_cpu_us_per_task=round(busy / (count * len(rounds)) * 1e6),
        cores=psutil.cpu_count(),
    )
