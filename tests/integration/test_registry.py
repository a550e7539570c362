"""RegistryService over real gRPC: register, heartbeat, list, watch, liveness."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from agentplex.client import Client, HubError
from agentplex.v1 import agent_pb2, registry_service_pb2 as rs


def card(
    agent_id: str = "", kind: int = agent_pb2.AGENT_KIND_CUSTOM, caps: tuple[str, ...] = ()
) -> agent_pb2.AgentCard:
    return agent_pb2.AgentCard(id=agent_id, name=agent_id, kind=kind, capabilities=caps)  # type: ignore[arg-type]


async def next_event(events: AsyncIterator[agent_pb2.AgentEvent]) -> agent_pb2.AgentEvent:
    return await asyncio.wait_for(anext(events), 5)


async def test_register_get_list_with_filters(client: Client) -> None:
    await client.register(card("py-1", agent_pb2.AGENT_KIND_CLAUDE_CODE, ("python", "review")))
    await client.register(card("go-1", agent_pb2.AGENT_KIND_CODEX, ("lang:go",)))
    assigned = await client.register(card(kind=agent_pb2.AGENT_KIND_GEMINI_CLI, caps=("python",)))
    assert assigned.card.id.startswith("gemini_cli-")
    assert assigned.status == agent_pb2.AGENT_STATUS_ONLINE
    assert assigned.card.max_concurrent_tasks == 1
    got = await client.get_agent("py-1")
    assert list(got.card.capabilities) == ["python", "review"]
    assert got.transport == agent_pb2.TRANSPORT_GRPC
    python = await client.agents(capabilities=["python"])
    assert sorted(a.card.id for a in python) == sorted(["py-1", assigned.card.id])
    both = await client.agents(capabilities=["python", "review"])
    assert [a.card.id for a in both] == ["py-1"]
    codex = await client.agents(kinds=[agent_pb2.AGENT_KIND_CODEX])
    assert [a.card.id for a in codex] == ["go-1"]
    offline = await client.agents(statuses=[agent_pb2.AGENT_STATUS_OFFLINE])
    assert offline == []
    assert len(await client.agents()) == 3


async def test_heartbeat_status_and_deregister(client: Client) -> None:
    await client.register(card("a1"))
    busy = await client.heartbeat("a1", agent_pb2.AGENT_STATUS_BUSY)
    assert busy.status == agent_pb2.AGENT_STATUS_BUSY
    await client.deregister("a1")
    with pytest.raises(HubError) as gone:
        await client.get_agent("a1")
    assert gone.value.code == grpc.StatusCode.NOT_FOUND


async def test_watch_reports_snapshot_join_change_and_leave(
    client: Client, client2: Client
) -> None:
    await client.register(card("early"))
    events = client2.watch_agents(include_current=True)
    snapshot = await next_event(events)
    assert (
        snapshot.type == agent_pb2.AGENT_EVENT_TYPE_SNAPSHOT and snapshot.agent.card.id == "early"
    )
    await client.register(card("late"))
    joined = await next_event(events)
    assert (joined.type, joined.agent.card.id) == (agent_pb2.AGENT_EVENT_TYPE_JOINED, "late")
    await client.heartbeat("late", agent_pb2.AGENT_STATUS_DRAINING)
    changed = await next_event(events)
    assert changed.type == agent_pb2.AGENT_EVENT_TYPE_STATUS_CHANGED
    assert changed.agent.status == agent_pb2.AGENT_STATUS_DRAINING
    await client.deregister("late")
    left = await next_event(events)
    assert (left.type, left.agent.card.id, left.reason) == (
        agent_pb2.AGENT_EVENT_TYPE_LEFT,
        "late",
        "deregistered",
    )
    await events.aclose()  # type: ignore[attr-defined]


async def test_watch_filters_by_capability(client: Client, client2: Client) -> None:
    events = client2.watch_agents(include_current=False, capabilities=["go"])
    waiter = asyncio.create_task(next_event(events))
    await asyncio.sleep(0.1)
    await client.register(card("py", caps=("python",)))
    await client.register(card("go", caps=("go",)))
    assert (await waiter).agent.card.id == "go"


async def test_agent_without_heartbeats_goes_offline_then_leaves(client: Client) -> None:
    """fast_settings: heartbeat_timeout 1 s, grace 1.5 s."""
    await client.register(card("quiet"))
    await asyncio.sleep(1.3)
    assert (await client.get_agent("quiet")).status == agent_pb2.AGENT_STATUS_OFFLINE
    back = await client.heartbeat("quiet")
    assert back.status == agent_pb2.AGENT_STATUS_ONLINE
    await asyncio.sleep(2.8)
    with pytest.raises(HubError) as gone:
        await client.get_agent("quiet")
    assert gone.value.code == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("request_", "code", "named"),
    [
        (rs.RegisterAgentRequest(), grpc.StatusCode.INVALID_ARGUMENT, "card is required"),
        (
            rs.RegisterAgentRequest(card=agent_pb2.AgentCard(id="has space")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "card.id",
        ),
        (
            rs.RegisterAgentRequest(card=agent_pb2.AgentCard(id="x" * 191)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "card.id",
        ),
        (
            rs.RegisterAgentRequest(card=agent_pb2.AgentCard(kind=99)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "card.kind",
        ),  # type: ignore[arg-type]
        (
            rs.RegisterAgentRequest(
                card=agent_pb2.AgentCard(capabilities=[f"c{i}" for i in range(65)])
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "limits.max_capabilities",
        ),
        (
            rs.RegisterAgentRequest(card=agent_pb2.AgentCard(capabilities=["two words"])),
            grpc.StatusCode.INVALID_ARGUMENT,
            "card.capabilities[0]",
        ),
        (
            rs.RegisterAgentRequest(card=agent_pb2.AgentCard(name="n" * 2000)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "limits.max_text_length",
        ),
        (
            rs.RegisterAgentRequest(card=agent_pb2.AgentCard(labels={"k": "v" * 9000})),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "limits.max_header_bytes",
        ),
    ],
)
async def test_bad_registration_is_refused(
    client: Client, request_: rs.RegisterAgentRequest, code: grpc.StatusCode, named: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.registry.RegisterAgent(request_)
    assert refused.value.code() == code
    assert named in (refused.value.details() or "")
    assert await client.agents() == []


@pytest.mark.parametrize(
    ("call", "code", "named"),
    [
        ("heartbeat-offline", grpc.StatusCode.INVALID_ARGUMENT, "status"),
        ("heartbeat-unknown", grpc.StatusCode.INVALID_ARGUMENT, "status"),
        ("heartbeat-missing", grpc.StatusCode.NOT_FOUND, "ghost"),
        ("get-empty", grpc.StatusCode.INVALID_ARGUMENT, "agent_id is required"),
        ("list-bad-kind", grpc.StatusCode.INVALID_ARGUMENT, "filter.kinds[0]"),
        ("list-bad-status", grpc.StatusCode.INVALID_ARGUMENT, "filter.statuses[0]"),
        ("deregister-missing", grpc.StatusCode.NOT_FOUND, "ghost"),
    ],
)
async def test_bad_registry_requests(
    client: Client, call: str, code: grpc.StatusCode, named: str
) -> None:
    await client.register(card("real"))
    stub = client.registry
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        if call == "heartbeat-offline":
            await stub.Heartbeat(
                rs.HeartbeatRequest(agent_id="real", status=agent_pb2.AGENT_STATUS_OFFLINE)
            )
        elif call == "heartbeat-unknown":
            await stub.Heartbeat(rs.HeartbeatRequest(agent_id="real", status=42))  # type: ignore[arg-type]
        elif call == "heartbeat-missing":
            await stub.Heartbeat(rs.HeartbeatRequest(agent_id="ghost"))
        elif call == "get-empty":
            await stub.GetAgent(rs.GetAgentRequest())
        elif call == "list-bad-kind":
            await stub.ListAgents(rs.ListAgentsRequest(filter=rs.AgentFilter(kinds=[77])))  # type: ignore[list-item]
        elif call == "list-bad-status":
            await stub.ListAgents(rs.ListAgentsRequest(filter=rs.AgentFilter(statuses=[77])))  # type: ignore[list-item]
        else:
            await stub.DeregisterAgent(rs.DeregisterAgentRequest(agent_id="ghost"))
    assert refused.value.code() == code
    assert named in (refused.value.details() or "")
    assert (await client.get_agent("real")).status == agent_pb2.AGENT_STATUS_ONLINE
