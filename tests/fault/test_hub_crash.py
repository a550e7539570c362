"""The hub process dies (SIGKILL) and comes back on the same port: agents and subscribers
reconnect by themselves. With the memory engine nothing survives the crash, so agents register
again and subscribers are told their positions are from another epoch."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from agentplex.client import Client
from tests.support.hubs import serve_process
from tests.support.streams import until

FAST = {
    "AGENTPLEX_SESSION__HEARTBEAT_INTERVAL": "0.2",
    "AGENTPLEX_SESSION__HEARTBEAT_TIMEOUT": "1",
    "AGENTPLEX_SESSION__GRACE_PERIOD": "1",
    "AGENTPLEX_SESSION__TICK": "0.05",
}


async def wait_for_agent(address: str, agent_id: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with Client(address, timeout=1) as client:
                if agent_id in {a.card.id for a in await client.agents()}:
                    return
        except Exception:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"agent {agent_id} did not come back")


async def _received(received: list[bytes], count: int) -> bool:
    return len(received) >= count


@pytest.mark.slow
async def test_agent_and_subscriber_survive_a_hub_crash() -> None:
    with serve_process(env=FAST) as (first, address):
        port = address.rsplit(":", 1)[1]
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentplex",
                "agent",
                "--id",
                "survivor",
                "--capabilities",
                "echo",
                "--exec",
                "cat",
                "--hub",
                address,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await wait_for_agent(address, "survivor")
            async with Client(address) as client:
                sub = client.subscribe("news")
                received: list[bytes] = []

                async def follow() -> None:
                    async for env in sub:
                        received.append(env.payload)
                        if len(received) == 2:
                            return

                follower = asyncio.create_task(follow())
                await asyncio.wait_for(sub.ready.wait(), 10)
                await client.publish("news", "before")
                await until(lambda: _received(received, 1))  # it has a position to resume from
                os.kill(first.pid, signal.SIGKILL)
                first.wait(10)
                sub.ready.clear()
                with serve_process("--grpc-port", port, env=FAST) as (_, again):
                    assert again == address
                    await wait_for_agent(address, "survivor")
                    await asyncio.wait_for(sub.ready.wait(), 20)
                    assert not sub.states[0].recovered  # a new process: a new epoch
                    await client.publish("news", "after")
                    await asyncio.wait_for(follower, 10)
                    assert received == [b"before", b"after"]
                    handle = await client.submit("still here", require=["echo"])
                    assert (await asyncio.wait_for(handle.result(), 20)).data == b"still here"
        finally:
            agent.terminate()
            agent.wait(10)
