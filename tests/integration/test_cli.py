"""The `agentplex` command as a user runs it: a real `agentplex serve` process and client
commands in subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support.hubs import serve_process


def cli(
    *args: str, hub: str | None = None, stdin: str | None = None, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if hub:
        env["AGENTPLEX_HUB"] = hub
    return subprocess.run(
        [sys.executable, "-m", "agentplex", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def hub() -> Iterator[str]:
    with serve_process() as (_, address):
        yield address


def test_publish_prints_position(hub: str) -> None:
    first = cli("publish", "cli.chat", "hello", hub=hub)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("cli.chat #1 epoch ")
    out = cli("publish", "cli.chat", "again", "--json", "--id", "k1", hub=hub)
    result = json.loads(out.stdout)
    assert result["position"]["seq"] == "2" and result["id"] == "k1"
    dup = cli("publish", "cli.chat", "again", "--id", "k1", "--hub", hub)
    assert "duplicate" in dup.stdout and "#2" in dup.stdout


def test_publish_reads_stdin_and_headers(hub: str) -> None:
    out = cli("publish", "cli.stdin", "-", "--header", "k=v", "--json", stdin="from stdin", hub=hub)
    assert out.returncode == 0, out.stderr
    history = cli("history", "cli.stdin", "--json", hub=hub)
    [env] = [json.loads(line) for line in history.stdout.splitlines()]
    assert env["headers"] == {"k": "v"}
    assert env["payload"] == "ZnJvbSBzdGRpbg=="  # base64 of "from stdin" in canonical JSON


def test_subscribe_replays_then_follows_and_exits_after_count(hub: str) -> None:
    for i in range(3):
        cli("publish", "cli.sub", f"m{i}", hub=hub)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentplex",
            "subscribe",
            "cli.sub",
            "cli.other.*",
            "--since",
            "1",
            "--count",
            "4",
            "--json",
            "--hub",
            hub,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = [json.loads(proc.stdout.readline()) for _ in range(2)]  # m1, m2 replayed
    cli("publish", "cli.other.x", "pattern", hub=hub)
    cli("publish", "cli.sub", "m3", hub=hub)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    lines += [json.loads(line) for line in out.splitlines()]
    assert [(e["channel"], e["position"]["seq"]) for e in lines] == [
        ("cli.sub", "2"),
        ("cli.sub", "3"),
        ("cli.other.x", "1"),
        ("cli.sub", "4"),
    ]


def test_history_since_and_limit(hub: str) -> None:
    for i in range(5):
        cli("publish", "cli.hist", f"h{i}", hub=hub)
    out = cli("history", "cli.hist", "--since", "2", "--limit", "2", hub=hub)
    assert out.returncode == 0, out.stderr
    assert [line.split(": ", 1)[1] for line in out.stdout.splitlines()] == ["h2", "h3"]


def test_agents_lists_registered_agents(hub: str) -> None:
    empty = cli("agents", hub=hub)
    assert empty.returncode == 0 and "no agents" in empty.stderr
    import asyncio

    from agentplex.client import Client
    from agentplex.v1 import agent_pb2

    async def register() -> None:
        async with Client(hub) as client:
            await client.register(
                agent_pb2.AgentCard(
                    id="cli-agent", kind=agent_pb2.AGENT_KIND_CODEX, capabilities=["go"]
                )
            )

    asyncio.run(register())
    table = cli("agents", hub=hub)
    assert table.stdout.split() == ["cli-agent", "codex", "-", "online", "0/1", "go"]
    as_json = cli("agents", "--json", "--kind", "codex", "--status", "online", hub=hub)
    assert json.loads(as_json.stdout)["card"]["id"] == "cli-agent"
    bad = cli("agents", "--kind", "robot", hub=hub)
    assert bad.returncode == 2 and "--kind 'robot' is not one of" in bad.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("publish", "bad channel", "x"), "INVALID_ARGUMENT: envelope.channel"),
        (("publish", "_sys.agents", "x"), "PERMISSION_DENIED"),
        (
            ("publish", "ok", "x", "--header", "novalue"),
            "--header 'novalue' must look like KEY=VALUE",
        ),
        (("history", "bad channel"), "INVALID_ARGUMENT: channel"),
        (("subscribe", "bad channel"), "INVALID_ARGUMENT: channels[0]"),
    ],
)
def test_bad_input_gives_one_clear_line_and_nonzero_exit(
    hub: str, args: tuple[str, ...], message: str
) -> None:
    out = cli(*args, hub=hub)
    assert out.returncode != 0
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert cli("publish", "still.up", "x", hub=hub).returncode == 0


def test_unreachable_hub() -> None:
    out = cli("history", "x", "--hub", "127.0.0.1:1")
    assert out.returncode == 1
    assert "cannot reach the hub at 127.0.0.1:1" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_serve_stops_cleanly_on_sigterm_and_sigint() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        with serve_process() as (proc, address):
            assert cli("publish", "x", "y", hub=address).returncode == 0
            proc.send_signal(sig)
            assert proc.wait(15) == 0
            proc.reader.join(5)  # type: ignore[attr-defined]
            assert "shutting down" in "".join(proc.output)  # type: ignore[attr-defined]


def test_serve_refuses_bad_configuration() -> None:
    env = {**os.environ, "AGENTPLEX_SESSION__GRACE_PERIOD": "-1"}
    out = subprocess.run(
        [sys.executable, "-m", "agentplex", "serve"],
        capture_output=True,
        text=True,
        env=env,
        timeout=20,
    )
    assert out.returncode == 2
    assert "session.grace_period must be positive" in out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "agentplex", "serve", "--env", "nowhere"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 2 and "--env" in out.stderr


def test_serve_reports_a_port_in_use(hub: str) -> None:
    port = hub.rsplit(":", 1)[1]
    out = subprocess.run(
        [sys.executable, "-m", "agentplex", "serve", "--grpc-port", port],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 1
    assert f"cannot bind gRPC on 127.0.0.1:{port}" in out.stderr
