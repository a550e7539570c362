"""Authorization by scopes on every operation, over gRPC and WebSocket: each operation refused
with PERMISSION_DENIED without its scope (and audited), allowed with it; a subscriber never
receives a channel outside its scopes, pattern subscriptions included."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import grpc
import pytest
from websockets.asyncio.client import connect

from agentplex.client import Client, HubError, TaskContext
from agentplex.node import HubNode
from agentplex.v1 import agent_pb2
from tests.support.auth import auth_settings, token
from tests.support.hubs import fast_settings
from tests.support.streams import take
from tests.support.ws_sessions import answer

ADMIN = "admin"


@pytest.fixture
async def node() -> AsyncIterator[HubNode]:
    settings = fast_settings(
        auth=auth_settings(), session={"heartbeat_interval": 1.0, "heartbeat_timeout": 30.0}
    )
    async with HubNode(settings) as running:
        yield running


@pytest.fixture
async def clients(node: HubNode) -> AsyncIterator[Callable[[str, str], Client]]:
    """`clients(sub, scopes)`: a client of the hub holding a token for `sub` with `scopes`."""
    async with AsyncExitStack() as stack:

        def make(sub: str, scopes: str) -> Client:
            client = Client(node.grpc_address, token=token(sub, scopes))
            stack.push_async_callback(client.close)
            return client

        yield make


async def denied(call: Awaitable[Any], fragment: str) -> None:
    with pytest.raises(HubError) as err:
        await call
    assert err.value.code == grpc.StatusCode.PERMISSION_DENIED, err.value
    assert fragment in err.value.message


async def test_publish_needs_a_matching_scope(
    clients: Callable[[str, str], Client], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agentplex.audit")
    writer, admin = clients("writer", "publish:chat.*"), clients("boss", ADMIN)
    assert (await writer.publish("chat.room", "hi")).position.seq == 1
    await denied(writer.publish("news.today", "x"), "publish:<glob>")
    await denied(writer.publish("_sys.agents", "x"), "the hub's own")
    from agentplex.client import envelope

    batch = [envelope("chat.room", "a"), envelope("secret", "b")]
    await denied(writer.publish_batch(batch), "'secret'")
    history = await admin.history("chat.room")
    assert [e.payload for e in history.envelopes] == [b"hi"]  # the refused batch left nothing
    (event,) = [
        r.audit
        for r in caplog.records
        if getattr(r, "audit", {}).get("event") == "permission.denied"
        and "news.today" in r.audit["reason"]
    ]
    assert (event["principal"], event["transport"]) == ("writer", "grpc")


async def test_subscriptions_and_history_follow_subscribe_scopes(
    clients: Callable[[str, str], Client],
) -> None:
    reader = clients("reader", "subscribe:public.*")
    admin = clients("boss", ADMIN)
    await denied(reader.history("secret.plans"), "subscribe:<glob>")
    with pytest.raises(HubError) as err:
        await take(reader.subscribe("secret.plans", reconnect=False), 1, timeout=5)
    assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
    nothing = clients("nobody", "task:read")
    with pytest.raises(HubError) as err:
        await take(nothing.subscribe("*", reconnect=False), 1, timeout=5)
    assert err.value.code == grpc.StatusCode.PERMISSION_DENIED

    # A pattern that would reach a forbidden channel delivers only the allowed ones.
    everything = reader.subscribe("*")
    got = asyncio.create_task(take(everything, 2, timeout=10))
    await asyncio.wait_for(everything.ready.wait(), 5)
    for channel in ("secret.plans", "public.news", "agent.someone", "public.more"):
        if channel.startswith("agent."):
            continue
        await admin.publish(channel, channel)
    assert [e.channel for e in await got] == ["public.news", "public.more"]


async def test_a_websocket_pattern_subscription_never_reaches_a_forbidden_channel(
    node: HubNode, clients: Callable[[str, str], Client]
) -> None:
    admin = clients("boss", ADMIN)
    url = f"{node.ws_url}/v1/connect?token={token('viewer', 'subscribe:public.*')}"
    async with connect(url) as ws:
        await ws.send(json.dumps({"ref": "h", "hello": {}}))
        assert "welcome" in await answer(ws, "h")
        await ws.send(json.dumps({"ref": "s", "subscribe": {"channels": ["*", "public.*"]}}))
        assert "receipt" in await answer(ws, "s")
        await admin.publish("secret.x", "no")
        await admin.publish("public.y", "yes")
        seen = []
        while len(seen) < 1:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
            for delivery in frame.get("deliveries", {}).get("deliveries", []):
                seen.append(delivery["envelope"]["channel"])
        assert seen == ["public.y"]
        await ws.send(json.dumps({"ref": "x", "subscribe": {"channels": ["secret.x"]}}))
        refused = await answer(ws, "x")
        assert refused["error"]["code"] == "ERROR_CODE_PERMISSION_DENIED"


async def test_registration_follows_the_agent_scope(clients: Callable[[str, str], Client]) -> None:
    agent, other = clients("bot-1", "agent"), clients("someone", "task:read")
    admin = clients("boss", ADMIN)
    await denied(other.register(agent_pb2.AgentCard(id="someone")), "'agent' scope")
    await denied(agent.register(agent_pb2.AgentCard(id="bot-2")), "own sub 'bot-1'")
    named = await agent.register(agent_pb2.AgentCard(name="no id given"))
    assert (named.card.id, named.owner) == ("bot-1", "bot-1")
    async with agent.session(agent_pb2.AgentCard(id="bot-1")) as session:
        assert session.agent_id == "bot-1"
    intruder = clients("bot-9", "agent")
    await intruder.register(agent_pb2.AgentCard(id="bot-9"))
    await denied(agent.deregister("bot-9"), "belongs to another principal")
    await admin.deregister("bot-9")  # an admin may, and it is audited as an override


async def test_tasks_follow_task_scopes_and_ownership(
    clients: Callable[[str, str], Client], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agentplex.audit")
    submitter = clients("sam", "task:submit task:read")
    stranger = clients("eve", "task:submit task:read")
    reader_only = clients("rita", "task:read")
    no_read = clients("nora", "task:submit")
    admin = clients("boss", ADMIN)
    await denied(reader_only.submit("x"), "'task:submit'")
    handle = await submitter.submit("work", require=["nobody-has-this"])
    task_id = handle.task.id
    await denied(no_read.get_task(task_id), "'task:read'")
    await denied(no_read.list_tasks(), "'task:read'")
    assert (await reader_only.get_task(task_id)).id == task_id
    await denied(stranger.cancel_task(task_id), "submitted by another principal")
    await denied(stranger.provide_input(task_id, "x"), "submitted by another principal")
    await denied(stranger.handoff(task_id, "y"), "belongs to another principal")
    child = await submitter.handoff(task_id, "child", require=["nobody-has-this"])
    assert child.task.parent_task_id == task_id
    await admin.cancel_task(child.task.id)
    await submitter.cancel_task(task_id)
    overrides = [
        r.audit for r in caplog.records if getattr(r, "audit", {}).get("event") == "admin.override"
    ]
    assert overrides and overrides[0]["principal"] == "boss"
    assert overrides[0]["task"] == child.task.id


async def test_the_agent_working_a_task_may_hand_it_off(
    clients: Callable[[str, str], Client],
) -> None:
    submitter = clients("sam", "task:submit task:read")
    worker = clients("coder", "agent task:submit")
    handed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def work(task: TaskContext) -> str:
        child = await worker.handoff(task.id, "review it", require=["review"])
        handed.set_result(child.task.id)
        return "done"

    async with worker.session(agent_pb2.AgentCard(id="coder", capabilities=["code"])) as s:
        s.on_task(work)
        handle = await submitter.submit("write it", require=["code"])
        assert (await asyncio.wait_for(handle.result(), 10)).data == b"done"
    child = await submitter.get_task(await handed)
    assert child.parent_task_id == handle.task.id
