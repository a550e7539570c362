"""Agent records: creation from a card, status rules and filters (no I/O)."""

from __future__ import annotations

import secrets

from agentplex.core.clock import set_time
from agentplex.errors import InvalidArgument
from agentplex.v1 import agent_pb2, registry_service_pb2

AgentStatus = agent_pb2.AgentStatus
ONLINE = agent_pb2.AGENT_STATUS_ONLINE
OFFLINE = agent_pb2.AGENT_STATUS_OFFLINE
# Statuses an agent may report about itself; OFFLINE is the hub's to set.
SELF_REPORTED = frozenset(
    {
        agent_pb2.AGENT_STATUS_ONLINE,
        agent_pb2.AGENT_STATUS_BUSY,
        agent_pb2.AGENT_STATUS_WAITING_INPUT,
        agent_pb2.AGENT_STATUS_DRAINING,
    }
)


_PREFIX = {
    value.number: value.name.removeprefix("AGENT_KIND_").lower()
    for value in agent_pb2.AgentKind.DESCRIPTOR.values
}
_PREFIX[agent_pb2.AGENT_KIND_UNSPECIFIED] = "agent"


def new_agent_id(kind: int) -> str:
    return f"{_PREFIX.get(kind, 'agent')}-{secrets.token_hex(6)}"


def new_agent(
    card: agent_pb2.AgentCard,
    *,
    owner: str,
    transport: agent_pb2.Transport.ValueType,
    node: str,
    now_ns: int,
    default_max_tasks: int,
) -> agent_pb2.Agent:
    """A fresh registry record for `card` (a copy; the caller's card is not changed)."""
    agent = agent_pb2.Agent(
        status=ONLINE,
        transport=transport,
        node=node,
        owner=owner,
    )
    agent.card.CopyFrom(card)
    if not agent.card.id:
        agent.card.id = new_agent_id(card.kind)
    if not agent.card.kind:
        agent.card.kind = agent_pb2.AGENT_KIND_CUSTOM
    if not agent.card.name:
        agent.card.name = agent.card.id
    if not agent.card.max_concurrent_tasks:
        agent.card.max_concurrent_tasks = default_max_tasks
    set_time(agent.registered_at, now_ns)
    agent.last_seen.CopyFrom(agent.registered_at)
    agent.idle_since.CopyFrom(agent.registered_at)
    return agent


def check_reported_status(status: int, field: str = "status") -> None:
    if status and status not in SELF_REPORTED:
        allowed = ", ".join(agent_pb2.AgentStatus.Name(s) for s in sorted(SELF_REPORTED))
        raise InvalidArgument(f"{field}: an agent may report {allowed}, not {status}")


def matches(agent: agent_pb2.Agent, flt: registry_service_pb2.AgentFilter) -> bool:
    """True when `agent` passes every part of the filter (empty parts match anything)."""
    if flt.kinds and agent.card.kind not in flt.kinds:
        return False
    if flt.statuses and agent.status not in flt.statuses:
        return False
    if flt.capabilities:
        held = agent.card.capabilities
        return all(cap in held for cap in flt.capabilities)
    return True
