"""A routing decision among 1,000 registered agents, in-process. Target: under 20 µs.

The table holds 1,000 available agents of several kinds with overlapping capabilities and
varied load; a decision picks for random requirements (capabilities, preferred kinds). Every
decision is checked against a brute-force scan of the same table.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from agentplex.core.routing import Needs, RoutingTable, Slot
from tests.benchmarks.helpers import report

AGENTS = 1000
CAPS = ["python", "go", "review", "test", "docs", "lang:rust", "frontend", "infra"]


def table() -> RoutingTable:
    rng = random.Random(7)
    routes = RoutingTable()
    for i in range(AGENTS):
        routes.put(
            Slot(
                id=f"agent-{i:04d}",
                kind=rng.randint(1, 7),
                capabilities=frozenset(rng.sample(CAPS, rng.randint(2, 5))),
                max_tasks=rng.choice([1, 2, 4]),
                active=0,
                idle_since_ns=rng.randint(0, 10**12),
            )
        )
    for slot in list(routes.slots.values())[: AGENTS // 2]:
        routes.update(slot.id, active=slot.max_tasks - 1)
    return routes


def brute_force(routes: RoutingTable, needs: Needs) -> str | None:
    ranked = []
    for slot in routes.slots.values():
        if slot.available and needs.capabilities <= slot.capabilities:
            rank = (
                needs.preferred_kinds.index(slot.kind)
                if slot.kind in needs.preferred_kinds
                else len(needs.preferred_kinds)
            )
            ranked.append((rank, slot.active / slot.max_tasks, slot.idle_since_ns, slot.id))
    return min(ranked)[3] if ranked else None


@pytest.mark.benchmark(group="routing")
@pytest.mark.parametrize("shape", ["one-capability", "two-capabilities", "preferred-kind"])
def test_routing_decision_among_1000_agents(benchmark: Any, shape: str) -> None:
    routes = table()
    rng = random.Random(shape)
    needs_list = []
    for _ in range(200):
        caps = frozenset(rng.sample(CAPS, 1 if shape == "one-capability" else 2))
        kinds = (rng.randint(1, 7),) if shape == "preferred-kind" else ()
        needs_list.append(Needs(caps, kinds))
    for needs in needs_list:
        assert routes.route(needs) == brute_force(routes, needs)
    index = iter(range(10**9))

    def decide() -> str | None:
        return routes.route(needs_list[next(index) % len(needs_list)])

    benchmark(decide)
    stats = benchmark.stats.stats if benchmark.enabled else None
    report(
        benchmark,
        f"routing decision among {AGENTS} agents ({shape})",
        target_us=20,
        us_per_decision_median=round(stats.median * 1e6, 2) if stats else "n/a",
    )
