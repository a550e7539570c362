"""Real agent processes (`agentplex agent --exec ...`) against a real `agentplex serve`:
routing, a kill -9 mid-task, cancel interrupting the command, failures and `submit --wait`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentplex.client import Client, TaskFailed
from agentplex.v1 import task_pb2
from tests.support.hubs import serve_process

FAST = {
    "AGENTPLEX_SESSION__HEARTBEAT_INTERVAL": "0.2",
    "AGENTPLEX_SESSION__HEARTBEAT_TIMEOUT": "1",
    "AGENTPLEX_SESSION__GRACE_PERIOD": "1",
    "AGENTPLEX_SESSION__TICK": "0.05",
}

Spawn = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def hub() -> Iterator[str]:
    with serve_process(env=FAST) as (_, address):
        yield address


@pytest.fixture
def spawn(hub: str) -> Iterator[Spawn]:
    procs: list[subprocess.Popen[str]] = []

    def start(agent_id: str, caps: str, command: str, max_tasks: int = 1) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentplex",
                "agent",
                "--id",
                agent_id,
                "--capabilities",
                caps,
                "--max-tasks",
                str(max_tasks),
                "--exec",
                command,
                "--hub",
                hub,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


async def registered(client: Client, *ids: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        online = {a.card.id for a in await client.agents()}
        if set(ids) <= online:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"agents {ids} did not register")


async def test_routing_and_results_across_agent_processes(hub: str, spawn: Spawn) -> None:
    spawn("upper", "text", "tr a-z A-Z")
    spawn("counter", "count", "wc -c")
    async with Client(hub) as client:
        await registered(client, "upper", "counter")
        up = await client.submit("hello", require=["text"])
        count = await client.submit("12345", require=["count"])
        assert (await up.result()).data == b"HELLO"
        assert (await count.result()).data.strip() == b"5"
        done = await client.get_task(up.id)
        assert done.assigned_agent_id == "upper"


async def test_killed_agent_loses_its_task_to_another(
    hub: str, spawn: Spawn, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    doomed = spawn("doomed", "job", f"touch {started}; sleep 60")
    async with Client(hub) as client:
        await registered(client, "doomed")
        handle = await client.submit("work", require=["job"])
        deadline = time.monotonic() + 10
        while not started.exists():
            assert time.monotonic() < deadline, "the task never started on the first agent"
            await asyncio.sleep(0.05)
        os.kill(doomed.pid, signal.SIGKILL)
        spawn("rescuer", "job", "cat")
        final = await asyncio.wait_for(handle.wait(), 20)
        assert final.state == task_pb2.TASK_STATE_COMPLETED
        assert final.assigned_agent_id == "rescuer" and final.attempt == 2
        assert final.result.data == b"work"


async def test_cancel_interrupts_the_command(hub: str, spawn: Spawn, tmp_path: Path) -> None:
    marker = tmp_path / "interrupted"
    started = tmp_path / "started"
    spawn(
        "patient", "wait", f"trap 'touch {marker}; exit 130' INT; touch {started}; sleep 30 & wait"
    )
    async with Client(hub) as client:
        await registered(client, "patient")
        handle = await client.submit("x", require=["wait"])
        deadline = time.monotonic() + 10
        while not started.exists():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await handle.cancel("no longer needed")
        deadline = time.monotonic() + 10
        while not marker.exists():
            assert time.monotonic() < deadline, "the command did not get SIGINT"
            await asyncio.sleep(0.05)
        agent = await client.get_agent("patient")
        assert agent.active_tasks == 0


async def test_failing_command_fails_the_task_with_its_stderr(hub: str, spawn: Spawn) -> None:
    spawn("grumpy", "fail", "echo 'cannot do that' >&2; exit 3")
    async with Client(hub) as client:
        await registered(client, "grumpy")
        with pytest.raises(TaskFailed) as failed:
            await (await client.submit("x", require=["fail"])).result()
        assert failed.value.task.state == task_pb2.TASK_STATE_FAILED
        assert "exited with 3: cannot do that" in failed.value.task.error.message


def cli(hub: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentplex", *args, "--hub", hub],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_submit_wait_and_task_commands(hub: str, spawn: Spawn) -> None:
    spawn("lines", "lines", "sed 's/^/> /'")
    asyncio.run(_registered_once(hub, "lines"))
    out = cli(hub, "submit", "--require", "lines", "--wait", "one")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "> one\n"
    assert "progress: > one" in out.stderr
    failed = cli(hub, "submit", "--require", "nobody", "--deadline", "0.3", "--wait", "x")
    assert failed.returncode == 1
    assert "failed: the task's deadline passed" in failed.stderr
    queued = cli(hub, "submit", "--require", "nobody", "--json", "--idempotency-key", "k", "x")
    again = cli(hub, "submit", "--require", "nobody", "--json", "--idempotency-key", "k", "y")
    import json

    first, second = json.loads(queued.stdout), json.loads(again.stdout)
    assert first["id"] == second["id"]
    listed = cli(hub, "tasks", "--state", "submitted")
    assert first["id"] in listed.stdout
    shown = cli(hub, "task", "show", first["id"])
    assert shown.stdout.startswith(f"{first['id']}\tsubmitted")
    canceled = cli(hub, "task", "cancel", first["id"], "--reason", "test")
    assert "canceled" in canceled.stdout
    again_cancel = cli(hub, "task", "cancel", first["id"])
    assert again_cancel.returncode == 1 and "FAILED_PRECONDITION" in again_cancel.stderr
    bad = cli(hub, "tasks", "--state", "sleeping")
    assert bad.returncode == 2 and "--state 'sleeping' is not one of" in bad.stderr
    missing = cli(hub, "task", "show", "nope")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr


async def _registered_once(hub: str, agent_id: str) -> None:
    async with Client(hub) as client:
        await registered(client, agent_id)


def test_agent_command_refuses_bad_arguments(hub: str) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentplex",
            "agent",
            "--kind",
            "robot",
            "--exec",
            "cat",
            "--hub",
            hub,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "--kind 'robot' is not one of" in out.stderr
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentplex",
            "agent",
            "--id",
            "bad id",
            "--exec",
            "cat",
            "--hub",
            hub,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1 and "INVALID_ARGUMENT: card.id" in out.stderr
