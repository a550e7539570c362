"""Two `agentplex serve --engine redis` nodes on one Redis; the node holding a working agent is
killed with SIGKILL. Nothing acknowledged is lost: once the dead node's lease runs out
(engine.node_ttl), the surviving node removes its agents and routes their task to an agent on
the surviving node, which completes it (attempt 2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from agentplex.client import Client
from agentplex.v1 import task_pb2
from tests.fault.test_hub_crash import FAST, wait_for_agent
from tests.support.hubs import serve_process
from tests.support.redis_server import RedisServer
from tests.support.streams import until


@contextmanager
def agent_process(address: str, agent_id: str, command: str) -> Iterator[subprocess.Popen[bytes]]:
    args = ["--id", agent_id, "--capabilities", "work", "--exec", command, "--hub", address]
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentplex", "agent", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.slow
async def test_a_killed_node_loses_nothing_its_agents_task_finishes_elsewhere(
    private_redis: RedisServer,
) -> None:
    env = {**FAST, "AGENTPLEX_ENGINE__NODE_TTL": "1.5", "AGENTPLEX_ENGINE__REDIS_PREFIX": "crash"}
    shared = ("--engine", "redis", "--redis-url", private_redis.url)
    with (
        serve_process(*shared, env=env) as (node_a, on_a),
        serve_process(*shared, env=env) as (_, on_b),
        agent_process(on_a, "stuck", "sleep 60"),
    ):
        await wait_for_agent(on_b, "stuck")  # registered on A, seen from B
        async with Client(on_b) as client:
            handle = await client.submit("finish me", require=["work"])
            await until(lambda: working(client, handle.id), timeout=20)
            with agent_process(on_b, "rescuer", "cat"):
                await wait_for_agent(on_b, "rescuer")
                os.kill(node_a.pid, signal.SIGKILL)
                done = await handle.wait()
                assert done.state == task_pb2.TASK_STATE_COMPLETED
                assert (done.result.data, done.assigned_agent_id) == (b"finish me", "rescuer")
                assert done.attempt == 2
                assert "stuck" not in {a.card.id for a in await client.agents()}


async def working(client: Client, task_id: str) -> bool:
    task = await client.get_task(task_id)
    return task.state == task_pb2.TASK_STATE_WORKING and task.assigned_agent_id == "stuck"
