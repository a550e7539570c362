"""Prometheus metrics on the WebSocket port reflect what the hub did."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from agentplex.client import Client, TaskContext
from agentplex.node import HubNode
from agentplex.v1 import agent_pb2
from tests.support.streams import until
from tests.support.tamper import tamper
from tests.support.ws_sessions import answer


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


async def test_websocket_connections_deliveries_and_queue_depth_are_scraped(
    node: HubNode, client: Client
) -> None:
    async with connect(f"{node.ws_url}/v1/connect") as ws:  # JSON, no card: no inbox
        await ws.send(json.dumps({"ref": "h", "hello": {}}))
        assert "welcome" in await answer(ws, "h")
        await ws.send(json.dumps({"ref": "s", "subscribe": {"channels": ["scraped.*"]}}))
        assert "error" not in await answer(ws, "s")
        before = await scrape(node)
        assert before["agentplex_connections{transport=websocket}"] == 1
        for i in range(3):
            await client.publish("scraped.a", f"{i}")
        got: list[dict[str, object]] = []
        while len(got) < 3:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
            got.extend(frame.get("deliveries", {}).get("deliveries", []))
        assert len(got) == 3
        during = await scrape(node)
    assert during["agentplex_connections{transport=websocket}"] == 1
    delivered = "agentplex_messages_delivered_total"
    assert during[delivered] - before.get(delivered, 0) == 3  # one subscriber, three messages
    depth_sum = during["agentplex_session_queue_depth{stat=sum}"]
    depth_max = during["agentplex_session_queue_depth{stat=max}"]
    assert 0 <= depth_max <= depth_sum

    async def websocket_gone() -> bool:
        return (await scrape(node))["agentplex_connections{transport=websocket}"] == 0

    # Gone on close, not when the heartbeat timeout would reap a session left attached.
    await until(websocket_gone, timeout=node.settings.session.heartbeat_timeout / 2)


async def test_corrupt_history_entries_read_show_in_the_scrape(
    node: HubNode, client: Client
) -> None:
    for i in range(1, 6):
        await client.publish("scraped.sealed", f"m{i}")
    await tamper(node.hub.engine, "scraped.sealed", 2, b"m2", b"mX")
    await tamper(node.hub.engine, "scraped.sealed", 4, b"m4", b"mY")
    failures = "agentplex_integrity_failures_total"
    before = (await scrape(node)).get(failures, 0)
    page = await client.history("scraped.sealed")
    assert [e.payload for e in page.envelopes] == [b"m1", b"m3", b"m5"]
    assert (await scrape(node))[failures] - before == 2
