"""Prometheus metrics on the WebSocket port reflect what the hub did."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentplex.client import Client, TaskContext
from agentplex.node import HubNode
from agentplex.v1 import agent_pb2


async def scrape(node: HubNode) -> dict[str, float]:
    """The metrics page, fetched by a plain HTTP client (in a thread: the hub shares this
    test's event loop)."""
    url = node.ws_url.replace("ws://", "http://") + "/metrics"
    return await asyncio.to_thread(_scrape, url)


def _scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=5) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


async def test_metrics_count_messages_sessions_tasks_and_routing(
    node: HubNode, client: Client
) -> None:
    before = await scrape(node)
    assert before["agentplex_engine_available"] == 1
    for i in range(3):
        await client.publish("counted", f"{i}")
    await client.publish("counted", "again", id="same")
    await client.publish("counted", "again", id="same")

    async def work(task: TaskContext) -> str:
        return "done"

    async with client.session(agent_pb2.AgentCard(id="metered", capabilities=["m"])) as agent:
        agent.on_task(work)
        await (await client.submit("x", require=["m"])).result()
        during = await scrape(node)
    assert (
        during["agentplex_messages_published_total"]
        - before.get("agentplex_messages_published_total", 0)
        >= 4
    )
    assert during["agentplex_messages_duplicate_total"] >= 1
    assert during["agentplex_connections{transport=grpc}"] >= 1
    assert during["agentplex_tasks{state=COMPLETED}"] == 1
    assert during["agentplex_routing_seconds_count"] >= 1
    assert during["agentplex_task_queue_depth"] == 0
    assert "agentplex_integrity_failures_total" in during


async def test_unknown_paths_are_404(node: HubNode) -> None:
    url = node.ws_url.replace("ws://", "http://") + "/nothing"
    with pytest.raises(urllib.error.HTTPError) as missing:
        await asyncio.to_thread(urllib.request.urlopen, url, timeout=5)
    assert missing.value.code == 404
    missing.value.close()
