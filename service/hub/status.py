"""The hub at a glance for `agentplex status`: the nodes holding a lease on the engine, the tasks
by state, and the answering node's counters. Rates are left to the caller, from two answers
and their times: a hub that kept rates would have to pick a window for everyone."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

from agentplex.core import authz
from agentplex.core.principal import Principal
from agentplex.v1 import registry_service_pb2 as rs

if TYPE_CHECKING:
    from agentplex.hub.hub import Hub


async def hub_status(hub: Hub, principal: Principal, started_ns: int) -> rs.GetHubStatusResponse:
    """`started_ns`: when this node began serving, for its uptime."""
    authz.check_scope(principal, "task:read")
    now = time.time_ns()
    answer = rs.GetHubStatusResponse(node=hub.node, engine=hub.engine.name)
    answer.uptime.FromNanoseconds(now - started_ns)
    answer.time.FromNanoseconds(now)
    for node, expires_ns in sorted((await hub.engine.nodes()).items()):
        answer.nodes.add(id=node).expires_at.FromNanoseconds(expires_ns)
    states = Counter(task.state for task in await hub.engine.list_tasks())
    for state, count in sorted(states.items()):
        answer.tasks.add(state=state, count=count)
    m = hub.metrics
    answer.counters.messages_published = m.published
    answer.counters.messages_duplicate = m.duplicates
    answer.counters.messages_delivered = m.delivered
    answer.counters.integrity_failures = m.integrity_failures
    answer.counters.slow_consumers = m.slow_consumers
    return answer
