"""The audit log of a running `agentplex serve`: JSON lines in the file `audit.file` names, one
per authentication failure, registration, departure, denial, cancel, handoff and admin
override, each with principal, transport, peer and time; the JWT secret never in it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from agentplex.client import Client, HubError
from agentplex.v1 import agent_pb2
from tests.support.auth import SECRET, token
from tests.support.hubs import serve_process


def read_events(path: Path, wanted: int, timeout: float = 10) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= wanted or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.05)


async def test_security_events_become_json_lines(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    env = {
        "AGENTPLEX_AUTH__ENABLED": "true",
        "AGENTPLEX_AUTH__JWT_SECRET": SECRET,
        "AGENTPLEX_AUDIT__FILE": str(log),
    }
    with serve_process(env=env) as (_, address):
        async with (
            Client(address, token="garbage") as stranger,
            Client(address, token=token("sam", "task:submit task:read")) as sam,
            Client(address, token=token("bot", "agent")) as bot,
            Client(address, token=token("root", "admin")) as root,
        ):
            with pytest.raises(HubError):
                await stranger.publish("chat", "x")
            with pytest.raises(HubError) as err:
                await sam.publish("chat", "x")
            assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
            await bot.register(agent_pb2.AgentCard(id="bot"))
            parent = await sam.submit("work", require=["nobody"])
            child = await sam.handoff(parent.task.id, "more", require=["nobody"])
            await sam.cancel_task(parent.task.id)
            await root.cancel_task(child.task.id)
            await root.deregister("bot")
        events = read_events(log, 9)
    by_event: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        assert event["time"].endswith("Z")
        by_event.setdefault(event["event"], []).append(event)
    (failed,) = by_event["auth.failed"]
    assert failed["transport"] == "grpc" and failed["peer"] and "malformed" in failed["reason"]
    (denied,) = by_event["permission.denied"]
    assert (denied["principal"], denied["transport"]) == ("sam", "grpc")
    assert denied["peer"].startswith("ipv")
    (registered,) = by_event["agent.registered"]
    assert (registered["principal"], registered["agent"]) == ("bot", "bot")
    (handoff,) = by_event["task.handoff"]
    assert (handoff["principal"], handoff["task"]) == ("sam", parent.task.id)
    canceled = {(e["principal"], e["task"]) for e in by_event["task.canceled"]}
    assert canceled == {("sam", parent.task.id), ("root", child.task.id)}
    overrides = {e.get("task") or e.get("agent") for e in by_event["admin.override"]}
    assert overrides == {child.task.id, "bot"}
    (left,) = by_event["agent.left"]
    assert (left["agent"], left["owner"]) == ("bot", "bot")
    assert SECRET not in log.read_text()
