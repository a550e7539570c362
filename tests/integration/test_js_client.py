"""The JavaScript client (clients/js) against a live hub: its own tests, run with Node's test
runner, talk to an `agentplex serve` process over the WebSocket edge, with the Python SDK on
the other side (tests/support/js_peer.py)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agentplex.client import Client
from agentplex.node import HubNode
from tests.support.hubs import fast_settings, serve_process

JS = Path(__file__).resolve().parents[2] / "clients" / "js"


def node_command() -> list[str]:
    """Node 20+ with a global WebSocket (Node 20 has it behind a flag)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the JavaScript client's tests need Node 20 or later")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
    if int(version.lstrip("v").split(".")[0]) < 20:
        pytest.skip(f"node {version.strip()} is too old: the JavaScript client needs Node 20+")
    probe = [node, "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"]
    if subprocess.run(probe).returncode == 0:
        return [node]
    return [node, "--experimental-websocket"]


def test_the_js_client_suite_passes_against_a_live_hub() -> None:
    node = node_command()
    tests = sorted(str(p) for p in (JS / "test").glob("*.test.js"))
    # Short heartbeats so the client's heartbeats and the hub's pings both run during the
    # tests; a short grace period so a test can outlast it; a short ack timeout so a test sees
    # what is redelivered (and what is not) within seconds.
    timers = {
        "AGENTPLEX_SESSION__HEARTBEAT_INTERVAL": "0.5",
        "AGENTPLEX_SESSION__GRACE_PERIOD": "1.5",
        "AGENTPLEX_SESSION__ACK_TIMEOUT": "0.5",
    }
    with serve_process(env=timers) as (proc, grpc):
        env = {
            **os.environ,
            "AGENTPLEX_WS_URL": proc.ws_url,  # type: ignore[attr-defined]
            "AGENTPLEX_GRPC": grpc,
            "AGENTPLEX_PYTHON": sys.executable,
        }
        run = subprocess.run(
            [*node, "--test", "--test-reporter=spec", *tests],
            env=env,
            capture_output=True,
            text=True,
            timeout=100,  # under pytest's own timeout, so a hang shows node's output
        )
    assert run.returncode == 0, f"node --test failed:\n{run.stdout}\n{run.stderr}"
    assert "skipped 0" in run.stdout, f"a suite did not see the hub:\n{run.stdout}"


async def test_the_js_client_stops_its_tasks_when_the_node_drains() -> None:
    """A hub node that shuts down sends a drain frame: the JS agent's running task is
    aborted (its signal names the reason) before the connection closes."""
    script = (
        f'import {{ connect }} from "{JS / "agentplex.js"}";\n'
        'const s = await connect(process.argv[1], {card: {id: "js-drain", capabilities: ["d"]}});\n'
        "s.onTask((task) => new Promise((_, reject) => {\n"
        '  console.log("started");\n'
        '  task.signal.addEventListener("abort", () => {\n'
        '    console.log("aborted: " + task.signal.reason.message); reject(task.signal.reason);\n'
        "  });\n"
        "}));\n"
    )
    async with HubNode(fast_settings()) as node:
        agent = await asyncio.create_subprocess_exec(
            *node_command(), "--input-type=module", "-e", script, f"{node.ws_url}/v1/connect",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert agent.stdout is not None
        try:
            async with Client(node.grpc_address) as client:
                await client.submit("wait", require=["d"])
                line = await asyncio.wait_for(agent.stdout.readline(), 20)
                assert line.strip() == b"started"
            stopping = asyncio.create_task(node.stop())
            line = await asyncio.wait_for(agent.stdout.readline(), 20)
            await stopping
            assert line.startswith(b"aborted: task canceled:"), line
        finally:
            agent.kill()
            await agent.wait()
