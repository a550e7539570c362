"""`agentplex serve` logs on standard error: JSON lines that parse one by one, or readable text;
`--log-level` overrides `logging.level`; and the JWT secret never appears, even at DEBUG with
every library talking while clients publish, subscribe and run a session."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agentplex.client import Client
from agentplex.v1 import agent_pb2
from tests.support.hubs import ADDRESS

SECRET = secrets.token_urlsafe(48)
SERVE = (sys.executable, "-m", "agentplex", "serve", "--grpc-port", "0", "--ws-port", "0")
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) \S+: ")


@contextmanager
def serve(folder: Path, *env: tuple[str, str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A hub at DEBUG with a JWT secret loaded (auth off, so no token is needed); its output
    goes to files, which a chatty log cannot fill as it could a pipe."""
    out, err = (folder / "stdout").open("w"), (folder / "stderr").open("w")
    proc = subprocess.Popen(
        [*SERVE, "--log-level", "debug"],
        stdout=out,
        stderr=err,
        text=True,
        env={
            **os.environ,
            "AGENTPLEX_AUTH__ENABLED": "false",
            "AGENTPLEX_AUTH__JWT_SECRET": SECRET,
            **dict(env),
        },
    )
    try:
        deadline = time.monotonic() + 20
        while not (found := ADDRESS.search((folder / "stdout").read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.05)
        yield proc, found.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        out.close()
        err.close()


async def exercise(address: str) -> None:
    async with Client(address) as client:
        card = agent_pb2.AgentCard(id="log-agent", capabilities=["logs"])
        async with client.session(card) as agent:
            updates = await agent.subscribe("logs.*", ack=True)
            await client.publish("logs.one", "hello")
            async for message in updates:
                assert message.envelope.payload == b"hello"
                break
        await client.history("logs.one", since=0)


def stopped(proc: subprocess.Popen[str], folder: Path) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    return (folder / "stdout").read_text(), (folder / "stderr").read_text()


async def test_json_lines_parse_one_by_one_and_never_carry_the_secret(tmp_path: Path) -> None:
    with serve(tmp_path, ("AGENTPLEX_LOGGING__FORMAT", "json")) as (proc, address):
        await exercise(address)
        out, err = stopped(proc, tmp_path)
    lines = [json.loads(line) for line in err.splitlines()]
    assert lines and all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    assert all(line["time"].endswith("Z") for line in lines)
    assert {"DEBUG", "INFO"} <= {line["level"] for line in lines}  # --log-level debug won
    assert SECRET not in out and SECRET not in err


async def test_text_is_readable_and_never_carries_the_secret(tmp_path: Path) -> None:
    with serve(tmp_path, ("AGENTPLEX_LOGGING__FORMAT", "text")) as (proc, address):
        await exercise(address)
        out, err = stopped(proc, tmp_path)
    records = [line for line in err.splitlines() if TEXT_LINE.match(line)]
    assert len(records) > 10 and any(" DEBUG " in line for line in records)
    assert not any(line.startswith("{") for line in err.splitlines())
    assert SECRET not in out and SECRET not in err
