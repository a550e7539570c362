"""In-process agent registration on the memory engine. Target: < 10 us per registration.

`Hub.register_agent` checks the card, looks up the id, builds the registry record, stores it and
announces the agent on `_sys.agents` (an AgentEvent published through the hub's own accept path,
so it lands in channel history). It is async, so each benchmark round runs N registrations in one
coroutine (`runner.run`) and the figure is the round time divided by N (`us_per_op_*` in
extra_info).

- fresh hub: a new hub per round (set up outside the timing), N cards with new ids;
- full hub: a hub that has already registered 20,000 agents, so the `_sys.agents` history
  (10,000 entries) and the dedup window (10,000 ids) are full, as in a long-running hub;
- the pure part alone: `validation.check_card` and `registry.new_agent`, no I/O, no async.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest

from agentplex.core import registry
from agentplex.core.principal import ANONYMOUS
from agentplex.core.validation import check_card
from agentplex.hub import Hub
from agentplex.v1 import agent_pb2, registry_service_pb2
from tests.benchmarks.helpers import per_op_figures, report, serve_settings

N = 1000  # registrations per round
ROUNDS = 10
PRELOAD = 20_000  # registrations before the "full hub" rounds

_ids = itertools.count()


def make_cards(count: int) -> list[agent_pb2.AgentCard]:
    """Cards as a CLI runner sends them: a chosen id, a kind, a few capabilities and labels."""
    return [
        agent_pb2.AgentCard(
            id=f"bench-{next(_ids)}",
            name="bench agent",
            kind=agent_pb2.AGENT_KIND_CLAUDE_CODE,
            capabilities=["python", "review", "lang:go"],
            labels={"team": "bench"},
            version="1.0.0",
        )
        for _ in range(count)
    ]


async def register_all(hub: Hub, cards: list[agent_pb2.AgentCard]) -> None:
    register = hub.agents.register
    for card in cards:
        await register(ANONYMOUS, card, transport=agent_pb2.TRANSPORT_GRPC)


async def started_hub() -> Hub:
    hub = Hub(serve_settings())
    await hub.start()
    return hub


async def assert_registered(hub: Hub, cards: list[agent_pb2.AgentCard]) -> None:
    agents = {
        a.card.id: a for a in await hub.agents.list(ANONYMOUS, registry_service_pb2.AgentFilter())
    }
    for card in cards:
        agent = agents[card.id]
        assert agent.status == agent_pb2.AGENT_STATUS_ONLINE
        assert agent.transport == agent_pb2.TRANSPORT_GRPC
        assert list(agent.card.capabilities) == list(card.capabilities)
    page = await hub.read("_sys.agents", None, None, 1)
    assert page.entries, "registrations are announced on _sys.agents"
    event = agent_pb2.AgentEvent.FromString(page.entries[-1].envelope.payload)
    assert event.type == agent_pb2.AGENT_EVENT_TYPE_JOINED
    assert event.agent.card.id == cards[-1].id


@pytest.mark.benchmark(group="registration")
def test_register_agent_fresh_hub(benchmark: Any, runner: asyncio.Runner) -> None:
    pending: dict[int, tuple[Hub, list[agent_pb2.AgentCard]]] = {}

    def setup() -> tuple[tuple[Hub, list[agent_pb2.AgentCard]], dict[str, Any]]:
        hub = runner.run(started_hub())
        pending[id(hub)] = (hub, make_cards(N))
        gc.collect()  # the previous round's hub is garbage: collect it outside the timing
        return pending[id(hub)], {}

    def teardown(hub: Hub, cards: list[agent_pb2.AgentCard]) -> None:
        del pending[id(hub)]
        runner.run(assert_registered(hub, cards))
        assert hub.metrics.published >= N  # a _sys.agents event per registration
        runner.run(hub.stop())

    benchmark.pedantic(
        lambda hub, cards: runner.run(register_all(hub, cards)),
        setup=setup,
        teardown=teardown,
        rounds=ROUNDS,
        warmup_rounds=1,
    )
    for hub, cards in list(pending.values()):  # with --benchmark-disable: no teardown ran
        teardown(hub, cards)
    report(
        benchmark,
        "register_agent (fresh hub)",
        registrations_per_round=N,
        target_us=10,
        **per_op_figures(benchmark, N),
    )


@pytest.mark.benchmark(group="registration")
def test_register_agent_full_hub(benchmark: Any, runner: asyncio.Runner) -> None:
    hub = runner.run(started_hub())
    runner.run(register_all(hub, make_cards(PRELOAD)))

    def setup() -> tuple[tuple[list[agent_pb2.AgentCard]], dict[str, Any]]:
        return (make_cards(N),), {}

    def teardown(cards: list[agent_pb2.AgentCard]) -> None:
        runner.run(assert_registered(hub, cards))

    try:
        benchmark.pedantic(
            lambda cards: runner.run(register_all(hub, cards)),
            setup=setup,
            teardown=teardown,
            rounds=ROUNDS,
            warmup_rounds=1,
        )
        history = runner.run(hub.engine.history("_sys.agents", None, None, 1))
        assert history.top >= PRELOAD + N
    finally:
        runner.run(hub.stop())
    report(
        benchmark,
        f"register_agent (hub after {PRELOAD:,} registrations)",
        registrations_per_round=N,
        target_us=10,
        **per_op_figures(benchmark, N),
    )


def _pure_parts() -> dict[str, Callable[[], object]]:
    settings = serve_settings()
    limits = settings.limits
    card = make_cards(1)[0]
    anonymous_card = agent_pb2.AgentCard(name="bench", capabilities=["python"])

    def new_agent(c: agent_pb2.AgentCard = card) -> agent_pb2.Agent:
        return registry.new_agent(
            c,
            owner=ANONYMOUS.id,
            transport=agent_pb2.TRANSPORT_GRPC,
            node="node-bench",
            now_ns=time.time_ns(),
            default_max_tasks=settings.agents.default_max_concurrent_tasks,
        )

    def both() -> agent_pb2.Agent:
        check_card(card, limits)
        return new_agent()

    return {
        "check_card": lambda: check_card(card, limits),
        "new_agent": new_agent,
        "new_agent_assigned_id": lambda: new_agent(anonymous_card),
        "check_card+new_agent": both,
    }


@pytest.mark.benchmark(group="registration-pure")
@pytest.mark.parametrize(
    "part", ["check_card", "new_agent", "new_agent_assigned_id", "check_card+new_agent"]
)
def test_registration_pure_part(benchmark: Any, part: str) -> None:
    result = benchmark(_pure_parts()[part])
    if part != "check_card":
        assert isinstance(result, agent_pb2.Agent)
        assert result.card.id
        assert result.status == agent_pb2.AGENT_STATUS_ONLINE
        assert result.registered_at.seconds > 0
    report(benchmark, f"registration pure part {part}", **per_op_figures(benchmark, 1))
