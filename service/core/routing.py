"""Which agent gets a task: a pure function of the registry's state.

Candidates are ONLINE agents under their max_concurrent_tasks that hold every required
capability (or exactly the named target). Among them: preferred kinds first (in the order
given), then the least loaded (active / max), then the one idle longest.

`RoutingTable` keeps the available agents sorted by (load, idle since), so a decision walks the
list from the front and usually stops at the first agent: it does not scan the registry.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from agentplex.v1 import agent_pb2

ONLINE = agent_pb2.AGENT_STATUS_ONLINE


@dataclass(slots=True)
class Slot:
    """What routing needs to know about one agent."""

    id: str
    kind: int
    capabilities: frozenset[str]
    max_tasks: int
    active: int = 0
    status: int = ONLINE
    idle_since_ns: int = 0

    @property
    def available(self) -> bool:
        return self.status == ONLINE and self.active < self.max_tasks

    def key(self) -> tuple[float, int, str]:
        return (self.active / self.max_tasks, self.idle_since_ns, self.id)


@dataclass(frozen=True, slots=True)
class Needs:
    """A task's routing requirements."""

    capabilities: frozenset[str] = frozenset()
    preferred_kinds: Sequence[int] = ()
    target: str = ""
    exclude: Collection[str] = ()


@dataclass(slots=True)
class RoutingTable:
    slots: dict[str, Slot] = field(default_factory=dict)
    _order: list[tuple[float, int, str]] = field(default_factory=list)
    _keys: dict[str, tuple[float, int, str]] = field(default_factory=dict)

    def _unlist(self, agent_id: str) -> None:
        key = self._keys.pop(agent_id, None)
        if key is not None:
            order = self._order
            del order[bisect.bisect_left(order, key)]

    def _relist(self, slot: Slot) -> None:
        self._unlist(slot.id)
        if slot.available:
            key = slot.key()
            self._keys[slot.id] = key
            bisect.insort(self._order, key)

    def put(self, slot: Slot) -> None:
        self.slots[slot.id] = slot
        self._relist(slot)

    def remove(self, agent_id: str) -> Slot | None:
        self._unlist(agent_id)
        return self.slots.pop(agent_id, None)

    def update(
        self,
        agent_id: str,
        *,
        active: int | None = None,
        status: int | None = None,
        now_ns: int = 0,
    ) -> Slot | None:
        slot = self.slots.get(agent_id)
        if slot is None:
            return None
        if active is not None:
            if active == 0 and slot.active > 0:
                slot.idle_since_ns = now_ns
            slot.active = active
        if status is not None:
            slot.status = status
        self._relist(slot)
        return slot

    @property
    def has_available(self) -> bool:
        return bool(self._order)

    def available(self) -> Iterable[Slot]:
        """Available agents, least loaded and longest idle first."""
        slots = self.slots
        return (slots[key[2]] for key in self._order)

    def route(self, needs: Needs) -> str | None:
        if needs.target:
            slot = self.slots.get(needs.target)
            ok = slot is not None and slot.available and needs.capabilities <= slot.capabilities
            return needs.target if ok and needs.target not in needs.exclude else None
        preferred = needs.preferred_kinds
        best: Slot | None = None
        best_rank = len(preferred)
        for slot in self.available():
            if not needs.capabilities <= slot.capabilities or slot.id in needs.exclude:
                continue
            rank = preferred.index(slot.kind) if slot.kind in preferred else len(preferred)
            if rank == 0:
                return slot.id
            if rank < best_rank or best is None:
                best, best_rank = slot, rank
        return best.id if best is not None else None


def slot_of(agent: agent_pb2.Agent) -> Slot:
    return Slot(
        id=agent.card.id,
        kind=agent.card.kind,
        capabilities=frozenset(agent.card.capabilities),
        max_tasks=max(agent.card.max_concurrent_tasks, 1),
        active=agent.active_tasks,
        status=agent.status,
        idle_since_ns=agent.idle_since.ToNanoseconds(),
    )
