"""Agent records: defaults on registration, self-reported status rules, list filters."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from agentplex.core import registry
from agentplex.errors import InvalidArgument
from agentplex.v1 import agent_pb2, registry_service_pb2

NOW = 1_700_000_000_123_456_789


def register(card: agent_pb2.AgentCard) -> agent_pb2.Agent:
    return registry.new_agent(
        card,
        owner="alice",
        transport=agent_pb2.TRANSPORT_WEBSOCKET,
        node="node-1",
        now_ns=NOW,
        default_max_tasks=3,
    )


def test_new_agent_fills_defaults() -> None:
    card = agent_pb2.AgentCard(kind=agent_pb2.AGENT_KIND_CLAUDE_CODE, capabilities=["python"])
    agent = register(card)
    assert re.fullmatch(r"claude_code-[0-9a-f]{12}", agent.card.id)
    assert agent.card.name == agent.card.id
    assert agent.card.max_concurrent_tasks == 3
    assert agent.card.kind == agent_pb2.AGENT_KIND_CLAUDE_CODE
    assert list(agent.card.capabilities) == ["python"]
    assert agent.status == agent_pb2.AGENT_STATUS_ONLINE
    assert (agent.owner, agent.node) == ("alice", "node-1")
    assert agent.transport == agent_pb2.TRANSPORT_WEBSOCKET
    assert agent.active_tasks == 0
    for stamp in (agent.registered_at, agent.last_seen, agent.idle_since):
        assert stamp.ToNanoseconds() == NOW
    assert card.id == "" and card.name == ""  # the caller's card is not changed


def test_new_agent_keeps_explicit_values() -> None:
    card = agent_pb2.AgentCard(
        id="bot-1",
        name="Bot",
        kind=agent_pb2.AGENT_KIND_CODEX,
        max_concurrent_tasks=7,
        labels={"team": "x"},
        version="2",
    )
    agent = register(card)
    assert agent.card == card
    assert agent.card is not card


def test_unspecified_kind_becomes_custom() -> None:
    agent = register(agent_pb2.AgentCard())
    assert agent.card.kind == agent_pb2.AGENT_KIND_CUSTOM
    assert re.fullmatch(r"agent-[0-9a-f]{12}", agent.card.id)


def test_new_agent_ids_are_unique_and_named_by_kind() -> None:
    ids = {registry.new_agent_id(agent_pb2.AGENT_KIND_GEMINI_CLI) for _ in range(200)}
    assert len(ids) == 200
    assert all(i.startswith("gemini_cli-") for i in ids)
    assert registry.new_agent_id(agent_pb2.AGENT_KIND_GITHUB_COPILOT).startswith("github_copilot-")


@pytest.mark.parametrize("status", [0, *sorted(registry.SELF_REPORTED)])
def test_self_reportable_statuses(status: int) -> None:
    registry.check_reported_status(status)


@pytest.mark.parametrize("status", [agent_pb2.AGENT_STATUS_OFFLINE, 42])
def test_status_the_agent_may_not_report(status: int) -> None:
    with pytest.raises(InvalidArgument) as err:
        registry.check_reported_status(status, "heartbeat.status")
    message = err.value.message
    assert message.startswith("heartbeat.status:")
    assert str(status) in message
    assert "AGENT_STATUS_ONLINE" in message and "AGENT_STATUS_DRAINING" in message


KINDS = [k for k in agent_pb2.AgentKind.values() if k]
STATUSES = [s for s in agent_pb2.AgentStatus.values() if s]
CAPS = ["python", "go", "review", "lang:go"]


@settings(max_examples=200)
@given(
    kind=st.sampled_from(KINDS),
    status=st.sampled_from(STATUSES),
    held=st.lists(st.sampled_from(CAPS), unique=True),
    kinds=st.lists(st.sampled_from(KINDS), max_size=3),
    statuses=st.lists(st.sampled_from(STATUSES), max_size=3),
    wanted=st.lists(st.sampled_from(CAPS), max_size=3),
)
def test_matches_every_part_of_the_filter(
    kind: int,
    status: int,
    held: list[str],
    kinds: list[int],
    statuses: list[int],
    wanted: list[str],
) -> None:
    agent = agent_pb2.Agent(status=status)  # type: ignore[arg-type]
    agent.card.kind = kind  # type: ignore[assignment]
    agent.card.capabilities.extend(held)
    flt = registry_service_pb2.AgentFilter(
        kinds=kinds,  # type: ignore[arg-type]
        statuses=statuses,  # type: ignore[arg-type]
        capabilities=wanted,
    )
    expected = (
        (not kinds or kind in kinds)
        and (not statuses or status in statuses)
        and set(wanted) <= set(held)
    )
    assert registry.matches(agent, flt) is expected


def test_empty_filter_matches_all() -> None:
    assert registry.matches(agent_pb2.Agent(), registry_service_pb2.AgentFilter())
