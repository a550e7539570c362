"""Routing: the routing table against a brute-force reference of the rule in DESIGN.md.

Candidates are ONLINE agents under max_concurrent_tasks holding every required capability (or
exactly the named target); preferred kinds first in the order given, then least loaded
(active / max), then longest idle (smallest idle_since_ns), id last; excluded agents never.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from agentplex.core.routing import Needs, RoutingTable, Slot, slot_of
from agentplex.v1 import agent_pb2

ONLINE = agent_pb2.AGENT_STATUS_ONLINE
BUSY = agent_pb2.AGENT_STATUS_BUSY
WAITING_INPUT = agent_pb2.AGENT_STATUS_WAITING_INPUT
DRAINING = agent_pb2.AGENT_STATUS_DRAINING
OFFLINE = agent_pb2.AGENT_STATUS_OFFLINE
NOT_ONLINE = (BUSY, WAITING_INPUT, DRAINING, OFFLINE)

CLAUDE = agent_pb2.AGENT_KIND_CLAUDE_CODE
CURSOR = agent_pb2.AGENT_KIND_CURSOR
CODEX = agent_pb2.AGENT_KIND_CODEX
CUSTOM = agent_pb2.AGENT_KIND_CUSTOM

KINDS = [v.number for v in agent_pb2.AgentKind.DESCRIPTOR.values if v.number]
CAPS = ["python", "go", "review", "lang:rust", "docs"]
IDS = [f"a{i:02d}" for i in range(30)]


# The reference ---------------------------------------------------------------------------------


def eligible(slot: Slot, needs: Needs) -> bool:
    return (
        slot.status == ONLINE
        and slot.active < slot.max_tasks
        and needs.capabilities <= slot.capabilities
        and slot.id not in needs.exclude
    )


def load(slot: Slot) -> Fraction:
    return Fraction(slot.active, slot.max_tasks)


def reference_route(slots: Mapping[str, Slot], needs: Needs) -> str | None:
    """The rule, written out over every slot with exact fractions."""
    if needs.target:
        slot = slots.get(needs.target)
        return needs.target if slot is not None and eligible(slot, needs) else None
    candidates = [s for s in slots.values() if eligible(s, needs)]
    if not candidates:
        return None
    preferred = list(needs.preferred_kinds)

    def rank(s: Slot) -> int:
        return preferred.index(s.kind) if s.kind in preferred else len(preferred)

    return min(candidates, key=lambda s: (rank(s), load(s), s.idle_since_ns, s.id)).id


def reference_available(slots: Mapping[str, Slot]) -> list[str]:
    ready = [s for s in slots.values() if s.status == ONLINE and s.active < s.max_tasks]
    return [s.id for s in sorted(ready, key=lambda s: (load(s), s.idle_since_ns, s.id))]


def copy(slot: Slot) -> Slot:
    return dataclasses.replace(slot)


def table_of(slots: Iterable[Slot]) -> RoutingTable:
    table = RoutingTable()
    for slot in slots:
        table.put(copy(slot))
    return table


# Strategies -------------------------------------------------------------------------------------

statuses = st.sampled_from([ONLINE, ONLINE, ONLINE, *NOT_ONLINE])
cap_sets = st.frozensets(st.sampled_from(CAPS), max_size=4)


@st.composite
def slots(draw: st.DrawFn, agent_id: str | None = None) -> Slot:
    max_tasks = draw(st.integers(1, 5))
    return Slot(
        id=agent_id if agent_id is not None else draw(st.sampled_from(IDS)),
        kind=draw(st.sampled_from(KINDS)),
        capabilities=draw(cap_sets),
        max_tasks=max_tasks,
        active=draw(st.integers(0, max_tasks + 1)),  # over capacity happens (max lowered)
        status=draw(statuses),
        idle_since_ns=draw(st.integers(0, 5)),  # few values: ties are common
    )


@st.composite
def tables(draw: st.DrawFn) -> dict[str, Slot]:
    ids = draw(st.lists(st.sampled_from(IDS), unique=True, max_size=30))
    return {agent_id: draw(slots(agent_id)) for agent_id in ids}


@st.composite
def needs_for(draw: st.DrawFn, ids: list[str]) -> Needs:
    pool = [*ids, "nobody"]
    target = draw(st.sampled_from(pool)) if draw(st.integers(0, 4)) == 0 else ""
    return Needs(
        capabilities=draw(st.frozensets(st.sampled_from(CAPS), max_size=2)),
        preferred_kinds=tuple(draw(st.lists(st.sampled_from(KINDS), max_size=3))),
        target=target,
        exclude=frozenset(draw(st.lists(st.sampled_from(pool), max_size=4))),
    )


# Properties ------------------------------------------------------------------------------------


@settings(max_examples=200)
@given(data=st.data())
def test_route_matches_the_brute_force_reference(data: st.DataObject) -> None:
    reference = data.draw(tables())
    # The insertion order must not matter.
    order = data.draw(st.permutations(list(reference.values())))
    table = table_of(order)
    for _ in range(5):
        needs = data.draw(needs_for(list(reference)))
        chosen = table.route(needs)
        assert chosen == reference_route(reference, needs), needs
        if chosen is not None:
            slot = reference[chosen]
            assert slot.status == ONLINE and slot.active < slot.max_tasks
            assert needs.capabilities <= slot.capabilities
            assert chosen not in needs.exclude
    # Routing decides; it changes nothing.
    assert {s.id: dataclasses.asdict(s) for s in table.slots.values()} == {
        s.id: dataclasses.asdict(s) for s in reference.values()
    }


def _apply(reference: dict[str, Slot], op: tuple[Any, ...]) -> None:
    """What each table operation means, on the reference dict of slots."""
    if op[0] == "put":
        reference[op[1].id] = copy(op[1])
    elif op[0] == "remove":
        reference.pop(op[1], None)
    else:
        _, agent_id, active, status, now = op
        slot = reference.get(agent_id)
        if slot is None:
            return
        if active is not None:
            if active == 0 and slot.active > 0:
                slot.idle_since_ns = now  # idle from the moment its last task ended
            slot.active = active
        if status is not None:
            slot.status = status


operations = st.one_of(
    st.tuples(st.just("put"), slots()),
    st.tuples(st.just("remove"), st.sampled_from([*IDS[:10], "nobody"])),
    st.tuples(
        st.just("update"),
        st.sampled_from([*IDS[:10], "nobody"]),
        st.none() | st.integers(0, 6),
        st.none() | statuses,
        st.integers(0, 8),
    ),
)


@settings(max_examples=200)
@given(
    ops=st.lists(operations, max_size=40),
    needs_list=st.lists(needs_for(IDS[:10]), min_size=1, max_size=4),
)
def test_table_stays_consistent_under_put_update_remove(
    ops: list[tuple[Any, ...]], needs_list: list[Needs]
) -> None:
    table = RoutingTable()
    reference: dict[str, Slot] = {}
    for op in ops:
        if op[0] == "put":
            table.put(copy(op[1]))
        elif op[0] == "remove":
            removed = table.remove(op[1])
            assert (removed.id if removed else None) == (op[1] if op[1] in reference else None)
        else:
            _, agent_id, active, status, now = op
            updated = table.update(agent_id, active=active, status=status, now_ns=now)
            assert (updated is None) == (agent_id not in reference)
        _apply(reference, op)
        available = list(table.available())
        assert [s.id for s in available] == reference_available(reference)
        assert all(s.status == ONLINE and s.active < s.max_tasks for s in available)
        for needs in needs_list:
            chosen = table.route(needs)
            assert chosen == reference_route(reference, needs), (op, needs)
            if chosen is not None:
                slot = table.slots[chosen]
                assert slot.status == ONLINE and slot.active < slot.max_tasks
    assert set(table.slots) == set(reference)
    for agent_id, slot in reference.items():
        assert dataclasses.asdict(table.slots[agent_id]) == dataclasses.asdict(slot)


@settings(max_examples=100)
@given(reference=tables(), status=st.sampled_from(NOT_ONLINE))
def test_agents_that_are_not_online_get_nothing(reference: dict[str, Slot], status: int) -> None:
    for slot in reference.values():
        slot.status = status
    table = table_of(reference.values())
    assert list(table.available()) == []
    assert table.route(Needs()) is None
    for agent_id in reference:
        assert table.route(Needs(target=agent_id)) is None


@settings(max_examples=100)
@given(reference=tables(), caps=st.frozensets(st.sampled_from(CAPS), max_size=2))
def test_filling_the_table_by_routing_never_overloads(
    reference: dict[str, Slot], caps: frozenset[str]
) -> None:
    """Route, take the slot (active + 1), route again: every agent ends at most at its max,
    and the routing stops only when nobody capable has room."""
    table = table_of(reference.values())
    needs = Needs(capabilities=caps)
    for _ in range(200):
        chosen = table.route(needs)
        if chosen is None:
            break
        slot = table.slots[chosen]
        assert slot.active < slot.max_tasks
        table.update(chosen, active=slot.active + 1, now_ns=1)
    for slot in table.slots.values():
        start = reference[slot.id]
        if start.status == ONLINE and caps <= start.capabilities:
            assert slot.active == max(start.max_tasks, start.active)
        else:
            assert slot.active == start.active


# Examples -------------------------------------------------------------------------------------


def _slot(agent_id: str, **fields: Any) -> Slot:
    base: dict[str, Any] = {
        "kind": CUSTOM,
        "capabilities": frozenset({"python"}),
        "max_tasks": 2,
    }
    base.update(fields)
    return Slot(id=agent_id, **base)


def test_least_loaded_then_longest_idle_then_id() -> None:
    table = table_of(
        [
            _slot("busy", active=1, idle_since_ns=0),
            _slot("late", idle_since_ns=20),
            _slot("early-b", idle_since_ns=10),
            _slot("early-a", idle_since_ns=10),
        ]
    )
    assert table.route(Needs()) == "early-a"
    assert [s.id for s in table.available()] == ["early-a", "early-b", "late", "busy"]
    table.update("early-a", active=1)
    table.update("early-b", active=1)
    assert table.route(Needs()) == "late"


def test_load_is_relative_to_capacity() -> None:
    # 1 of 4 is less loaded than 1 of 2, even though idle for a shorter time.
    table = table_of(
        [
            _slot("small", active=1, max_tasks=2, idle_since_ns=0),
            _slot("big", active=1, max_tasks=4, idle_since_ns=99),
        ]
    )
    assert table.route(Needs()) == "big"
    # 2 of 4 and 1 of 2 are equally loaded: the longest idle wins.
    table.update("big", active=2)
    assert table.route(Needs()) == "small"


def test_preferred_kinds_win_over_load_in_the_given_order() -> None:
    table = table_of(
        [
            _slot("claude", kind=CLAUDE, active=1, max_tasks=2),
            _slot("cursor", kind=CURSOR, active=1, max_tasks=4),
            _slot("idle-custom", kind=CUSTOM),
        ]
    )
    assert table.route(Needs(preferred_kinds=(CLAUDE, CURSOR))) == "claude"
    assert table.route(Needs(preferred_kinds=(CURSOR, CLAUDE))) == "cursor"
    # A preference nobody matches falls back to the plain order.
    assert table.route(Needs(preferred_kinds=(CODEX,))) == "idle-custom"
    # The preferred agent, when full, gives way to the next preferred kind, then anyone.
    table.update("claude", active=2)
    assert table.route(Needs(preferred_kinds=(CLAUDE, CURSOR))) == "cursor"
    table.update("cursor", status=DRAINING)
    assert table.route(Needs(preferred_kinds=(CLAUDE, CURSOR))) == "idle-custom"


def test_every_required_capability_must_be_held() -> None:
    table = table_of(
        [
            _slot("py", capabilities=frozenset({"python"})),
            _slot("both", capabilities=frozenset({"python", "review"}), active=1),
        ]
    )
    assert table.route(Needs(capabilities=frozenset({"python"}))) == "py"
    assert table.route(Needs(capabilities=frozenset({"python", "review"}))) == "both"
    assert table.route(Needs(capabilities=frozenset({"go"}))) is None


@pytest.mark.parametrize("status", NOT_ONLINE)
def test_a_status_other_than_online_takes_no_work(status: int) -> None:
    table = table_of([_slot("x", status=status)])
    assert table.route(Needs()) is None
    assert table.route(Needs(target="x")) is None
    table.update("x", status=ONLINE)
    assert table.route(Needs()) == "x"


def test_target_must_be_available_capable_and_not_excluded() -> None:
    table = table_of([_slot("t", capabilities=frozenset({"go"})), _slot("other")])
    assert table.route(Needs(target="t")) == "t"
    assert table.route(Needs(target="t", capabilities=frozenset({"go"}))) == "t"
    assert table.route(Needs(target="t", capabilities=frozenset({"python"}))) is None
    assert table.route(Needs(target="t", exclude={"t"})) is None
    assert table.route(Needs(target="missing")) is None
    table.update("t", active=2)
    assert table.route(Needs(target="t")) is None  # full: never a fallback to "other"


def test_excluded_agents_are_never_chosen() -> None:
    table = table_of([_slot("a"), _slot("b", active=1)])
    assert table.route(Needs(exclude={"a"})) == "b"
    assert table.route(Needs(exclude={"a", "b"})) is None


def test_idle_since_resets_only_when_the_last_task_ends() -> None:
    table = table_of([_slot("x", idle_since_ns=5)])
    table.update("x", active=1, now_ns=100)
    assert table.slots["x"].idle_since_ns == 5
    table.update("x", active=2, now_ns=200)
    table.update("x", active=1, now_ns=300)
    assert table.slots["x"].idle_since_ns == 5
    table.update("x", active=0, now_ns=400)
    assert table.slots["x"].idle_since_ns == 400
    table.update("x", active=0, now_ns=500)  # already idle: unchanged
    assert table.slots["x"].idle_since_ns == 400


def test_full_agent_leaves_the_available_list_and_returns() -> None:
    table = table_of([_slot("x", max_tasks=1)])
    table.update("x", active=1)
    assert list(table.available()) == []
    table.update("x", active=0, now_ns=1)
    assert [s.id for s in table.available()] == ["x"]


def test_unknown_agents() -> None:
    table = RoutingTable()
    assert table.update("ghost", active=1) is None
    assert table.remove("ghost") is None
    assert table.route(Needs()) is None
    assert list(table.available()) == []


def test_put_replaces_a_slot() -> None:
    table = table_of([_slot("x", capabilities=frozenset({"go"}))])
    table.put(_slot("x", capabilities=frozenset({"python"}), status=BUSY))
    assert list(table.available()) == []
    table.put(_slot("x", capabilities=frozenset({"python"})))
    assert [s.id for s in table.available()] == ["x"]
    assert table.route(Needs(capabilities=frozenset({"go"}))) is None


def test_slot_of_reads_the_agent_record() -> None:
    agent = agent_pb2.Agent(
        card=agent_pb2.AgentCard(
            id="bot", kind=CODEX, capabilities=["python", "go"], max_concurrent_tasks=3
        ),
        status=DRAINING,
        active_tasks=2,
    )
    agent.idle_since.FromNanoseconds(1_700_000_000_000_000_123)
    slot = slot_of(agent)
    assert slot == Slot(
        id="bot",
        kind=CODEX,
        capabilities=frozenset({"python", "go"}),
        max_tasks=3,
        active=2,
        status=DRAINING,
        idle_since_ns=1_700_000_000_000_000_123,
    )


def test_slot_of_treats_zero_max_tasks_as_one() -> None:
    slot = slot_of(agent_pb2.Agent(card=agent_pb2.AgentCard(id="z"), status=ONLINE))
    assert slot.max_tasks == 1
    table = RoutingTable()
    table.put(slot)
    assert table.route(Needs()) == "z"
