"""The README's examples run as written, against a real `agentplex serve`."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from agentplex.client import SyncClient
from agentplex.node import HubNode
from tests.support.hubs import serve_process
from tests.support.redis_server import RedisServer, find_redis_server, redis_server

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README.read_text(), re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]


@pytest.fixture(scope="module")
def hub() -> Iterator[str]:
    with serve_process() as (_, address):
        yield address


@pytest.mark.parametrize("code", PYTHON, ids=[f"python-{i}" for i in range(len(PYTHON))])
def test_python_examples_run(hub: str, code: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "AGENTPLEX_HUB": hub},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def test_tour_commands_run(hub: str) -> None:
    tour = next(code for lang, code in BLOCKS if lang == "sh" and "agentplex publish chat" in code)
    for line in tour.splitlines():
        command = line.split("  #")[0].strip()
        if not command:
            continue
        argv = shlex.split(command)
        assert argv[0] == "agentplex"
        out = subprocess.run(
            [sys.executable, "-m", "agentplex", *argv[1:]],
            env={**os.environ, "AGENTPLEX_HUB": hub},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, f"{command}: {out.stderr}"


def test_task_commands_run(hub: str) -> None:
    block = next(code for lang, code in BLOCKS if lang == "sh" and "agentplex agent" in code)
    env = {**os.environ, "AGENTPLEX_HUB": hub}
    lines = [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    agent_argv = shlex.split(lines[0].rstrip("&").strip())
    agent = subprocess.Popen([sys.executable, "-m", "agentplex", *agent_argv[1:]], env=env)
    try:
        task_id = ""
        for command in lines[1:]:
            argv = shlex.split(command.replace("TASK_ID", task_id or "none"))
            if "TASK_ID" in command:
                argv = shlex.split(command.replace("TASK_ID", task_id))
            out = subprocess.run(
                [sys.executable, "-m", "agentplex", *argv[1:]],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            if argv[1] == "submit" and "--wait" in argv:
                assert out.returncode == 0, out.stderr
                assert out.stdout == "HELLO\n"
            elif argv[1] == "submit":
                task_id = out.stdout.split()[0]
            elif argv[1:3] == ["task", "cancel"]:
                pass  # the task may have completed already: either answer is fine
            else:
                assert out.returncode == 0, f"{command}: {out.stderr}"
    finally:
        agent.terminate()
        agent.wait(10)


def test_there_are_examples() -> None:
    assert len(PYTHON) >= 3


def test_redis_edge_commands_run() -> None:
    """The Redis edge's serve line and redis-cli lines, against a private redis-server."""
    cli = shutil.which("redis-cli")
    if cli is None or find_redis_server() is None:
        pytest.skip("needs redis-cli and redis-server")
    serve = next(code for lang, code in BLOCKS if lang == "sh" and "--redis-edge" in code)
    commands = next(code for lang, code in BLOCKS if lang == "sh" and "redis-cli PUB" in code)
    with redis_server() as server:
        args = [server.url if a.startswith("redis://") else a for a in shlex.split(serve)[2:]]
        with serve_process(*args) as (_, address):
            _wait_for_edge(server)
            follower = lines = None
            for line in commands.splitlines():
                argv = [cli, "-p", str(server.port), *shlex.split(line.split("  #")[0])[1:]]
                if "PSUBSCRIBE" in argv:
                    follower = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
                    lines = _lines_of(follower)
                    while lines.get(timeout=5).strip() != "1":
                        pass  # psubscribe, the pattern, the count: subscribed
                else:
                    subprocess.run(argv, check=True, timeout=10, capture_output=True)
            assert follower is not None and lines is not None
            try:
                mirrored = []
                while len(mirrored) < 2:
                    line = lines.get(timeout=5)
                    if line.startswith("{"):
                        mirrored.append(json.loads(line))
            finally:
                follower.terminate()
                follower.wait(5)
            with SyncClient(address) as hub:
                payloads = [e.payload for e in hub.history("chat").envelopes]
                agents = [a.card.id for a in hub.agents()]
    assert payloads == [b"hello from redis", b"hi"]
    assert [(m["channel"], m["position"]["seq"]) for m in mirrored] == [
        ("chat", "1"),
        ("chat", "2"),
    ]
    assert agents == ["redis-agent"]


def _wait_for_edge(server: RedisServer, timeout: float = 20) -> None:
    """Until a hub holds the edge lock and listens (both patterns subscribed)."""
    deadline = time.monotonic() + timeout
    with server.client() as redis:
        while not (redis.get("agentplex:edge:leader") and redis.pubsub_numpat() >= 2):
            assert time.monotonic() < deadline, "the Redis edge did not start"
            time.sleep(0.02)


def _lines_of(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """Lines `proc` prints, read by a thread so a test can wait for them with a timeout."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True
    ).start()
    return lines


def test_redis_engine_commands_run(private_redis: RedisServer) -> None:
    """The two `serve --engine redis` lines, on a private redis-server and free ports: what is
    published on one node is in the other's history, in order."""
    block = next(code for lang, code in BLOCKS if lang == "sh" and "--engine redis" in code)
    nodes = []
    for line in block.splitlines():
        args = shlex.split(line)[2:]
        args = [private_redis.url if a.startswith("redis://") else a for a in args]
        nodes.append([a for a in args if a not in ("--grpc-port", "50051", "50052")])
    env = {"AGENTPLEX_ENGINE__REDIS_PREFIX": "readme"}
    with (
        serve_process(*nodes[0], env=env) as (_, first),
        serve_process(*nodes[1], env=env) as (
            _,
            second,
        ),
        SyncClient(first) as one,
        SyncClient(second) as other,
    ):
        one.publish("shared", "from the first node")
        other.publish("shared", "from the second")
        page = other.history("shared")
        assert [e.payload for e in page.envelopes] == [
            b"from the first node",
            b"from the second",
        ]
        assert [e.position.seq for e in page.envelopes] == [1, 2]


async def test_websocket_frames_run(node: HubNode) -> None:
    """The JSON frames the WebSocket section types, sent as written: none is refused."""
    block = next(code for lang, code in BLOCKS if lang == "sh" and "python -m websockets" in code)
    frames = [line[2:] for line in block.splitlines() if line.startswith("> ")]
    assert frames
    async with connect(f"{node.ws_url}/v1/connect") as ws:
        for frame in frames:
            await ws.send(frame)
            ref = json.loads(frame)["ref"]
            while (answer := json.loads(await asyncio.wait_for(ws.recv(), 5))).get("ref") != ref:
                pass
            assert "error" not in answer, answer


def test_security_commands_run(tmp_path: Path) -> None:
    """The Security section's shell lines, as written, with the hub on free ports: the token
    `agentplex token issue` mints lets `agentplex publish` through."""
    block = next(code for lang, code in BLOCKS if lang == "sh" and "token issue" in code)
    script = block.replace("agentplex serve &", "agentplex serve --grpc-port 0 --ws-port 0 &")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AGENTPLEX") and k != "JWT_SECRET_KEY"
    }
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
    log = tmp_path / "serve.log"
    # The hub prints its address; the script's `agentplex publish` needs it in AGENTPLEX_HUB.
    wrapped = script.replace(
        "agentplex serve --grpc-port 0 --ws-port 0 &",
        f"agentplex serve --grpc-port 0 --ws-port 0 > {log} 2>&1 &\n"
        f"until grep -q 'grpc ' {log}; do sleep 0.05; done\n"
        f"export AGENTPLEX_HUB=$(sed -n 's/^ *grpc *//p' {log})",
    )
    try:
        out = subprocess.run(
            ["bash", "-euc", wrapped + "\nkill %1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        subprocess.run(["pkill", "-f", f"{log}"], check=False)
    assert out.returncode == 0, out.stderr + log.read_text()
    assert "seq" in out.stdout or out.stdout.strip(), out.stdout
