"""`agentplex status` against a live hub: --json counts exactly the agents, tasks and node the
test made, with rates from two samples; the tables name the agents and the node; the
GetHubStatus RPC behind it needs the task:read scope."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator

import grpc
import pytest

from agentplex.client import Client, HubError, TaskContext
from agentplex.node import HubNode
from agentplex.v1 import agent_pb2
from tests.integration.test_cli import cli
from tests.support.auth import auth_settings, token
from tests.support.hubs import fast_settings, serve_process


@pytest.fixture(scope="module")
def hub() -> Iterator[str]:
    with serve_process() as (_, address):
        yield address


async def done(task: TaskContext) -> str:
    return "done"


async def test_status_counts_what_the_hub_holds_and_shows_it(
    hub: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reviewer = agent_pb2.AgentCard(
        id="status-reviewer",
        name="Reviewer",
        kind=agent_pb2.AGENT_KIND_CODEX,
        capabilities=["review"],
    )
    helper = agent_pb2.AgentCard(id="status-helper", name="Helper", capabilities=["help"])
    async with Client(hub) as client, client.session(reviewer) as agent, client.session(helper):
        agent.on_task(done)
        await (await client.submit("one", require=["review"])).result()
        for i in range(2):  # nobody holds this capability: they wait
            await client.submit(f"waits {i}", require=["nobody-has-this"])

        async def publish_meanwhile() -> None:
            while True:
                await client.publish("status.load", "tick")
                await asyncio.sleep(0.02)

        publisher = asyncio.create_task(publish_meanwhile())
        try:
            out = await asyncio.to_thread(cli, "status", "--json", "--interval", "1", hub=hub)
        finally:
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        agents, tasks = data["agents"], data["tasks"]
        assert agents["total"] == 2
        assert {k: n for k, n in agents["by_status"].items() if n} == {"online": 2}
        assert {k: n for k, n in agents["by_kind"].items() if n} == {"codex": 1, "custom": 1}
        assert tasks["total"] == 3
        assert {k: n for k, n in tasks["by_state"].items() if n} == {"completed": 1, "submitted": 2}
        assert data["nodes"] == [
            {
                "id": data["node"],
                "lease_expires_at": data["nodes"][0]["lease_expires_at"],
                "agents": 2,
            }
        ]
        assert data["engine"] == "memory" and data["uptime_seconds"] > 0
        rates = data["rates"]
        assert rates["node"] == data["node"] and rates["interval_seconds"] > 0
        assert rates["messages_published_per_second"] > 0
        assert rates["messages_delivered_per_second"] >= 0
        assert rates["tasks_completed_per_second"] == 0  # none completed between the samples
        assert data["counters"]["messages_published"] > 0

        monkeypatch.setenv("COLUMNS", "200")  # rich fits its tables to the terminal's width
        table = await asyncio.to_thread(cli, "status", "--interval", "0", hub=hub)
        assert table.returncode == 0, table.stderr
        for shown in ("status-reviewer", "Reviewer", "status-helper", "Helper", data["node"]):
            assert shown in table.stdout
        assert "submitted 2, completed 1" in table.stdout


def test_a_bad_interval_is_refused(hub: str) -> None:
    out = cli("status", "--interval", "-1", hub=hub)
    assert out.returncode == 2 and "--interval" in out.stderr


async def test_get_hub_status_needs_the_task_read_scope() -> None:
    async with HubNode(fast_settings(auth=auth_settings())) as node:
        async with Client(node.grpc_address, token=token("bob", "agent")) as client:
            with pytest.raises(HubError) as refused:
                await client.hub_status()
            assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
            assert "task:read" in refused.value.message
        async with Client(node.grpc_address, token=token("ann", "task:read")) as client:
            status = await client.hub_status()
            assert [n.id for n in status.nodes] == [node.hub.node]
