"""Model-based test of the task manager: a real Hub (memory engine, in process) with agent
sessions attached to outboxes, driven by random operations.

After every step: no task is lost (queued, held by exactly one existing agent, or final), none
is completed twice, no agent holds more than its max_concurrent_tasks (and the hub's count of
its active tasks is right), attempts only grow, final states never change, new assignments go
to capable ONLINE agents that did not reject the task, nothing waits while a capable agent has
room, and the tasks that ran out of attempts (and only those) are on `_dlq.tasks`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from agentplex.config import Settings
from agentplex.core.outbox import Outbox
from agentplex.core.principal import Principal
from agentplex.core.routing import Needs, slot_of
from agentplex.errors import AlreadyExists, FailedPrecondition, HubError, NotFound
from agentplex.hub import Hub
from agentplex.hub.session import Session
from agentplex.v1 import agent_pb2, session_service_pb2 as ss, task_pb2
from tests.support.hubs import fast_settings
from tests.unit.test_routing import reference_route
from tests.unit.test_task_machine import (
    ASSIGNED,
    CANCELED,
    COMPLETED,
    FAILED,
    HELD,
    INPUT_REQUIRED,
    REJECTED,
    SUBMITTED,
    TERMINAL,
    WORKING,
)

Kind: TypeAlias = agent_pb2.AgentKind.ValueType
Status: TypeAlias = agent_pb2.AgentStatus.ValueType
ONLINE = agent_pb2.AGENT_STATUS_ONLINE
OFFLINE = agent_pb2.AGENT_STATUS_OFFLINE
SELF_REPORTED = [
    agent_pb2.AGENT_STATUS_ONLINE,
    agent_pb2.AGENT_STATUS_BUSY,
    agent_pb2.AGENT_STATUS_WAITING_INPUT,
    agent_pb2.AGENT_STATUS_DRAINING,
]
KINDS = [agent_pb2.AGENT_KIND_CLAUDE_CODE, agent_pb2.AGENT_KIND_CODEX, agent_pb2.AGENT_KIND_CUSTOM]
CAPS = ["python", "go", "review"]
GRPC = agent_pb2.TRANSPORT_GRPC
DLQ = "_dlq.tasks"

# Anonymous (auth off): one caller registers every agent of the model under its chosen ids.
PRINCIPAL = Principal(
    id="tester",
    scopes=frozenset({"agent", "publish:*", "subscribe:*", "task:submit", "task:read"}),
    anonymous=True,
)
ACK_DEADLINE = 30.0
GRACE = 100.0
DEFAULT_MAX_TASKS = 1


def model_settings() -> Settings:
    """Timers are driven by the test (tick calls with a future clock), never by the wall clock:
    the hub's own ticker does not run within a test, and nothing times out by itself."""
    return fast_settings(
        session={"heartbeat_timeout": 1e6, "grace_period": GRACE, "tick": 3600.0},
        # Finished tasks are kept far beyond the furthest tick (2 h ahead).
        tasks={"ack_deadline": ACK_DEADLINE, "retention": 10 * 86_400.0},
        agents={"default_max_concurrent_tasks": DEFAULT_MAX_TASKS},
    )


def clone(task: task_pb2.Task) -> task_pb2.Task:
    copy = task_pb2.Task()
    copy.CopyFrom(task)  # the memory engine hands out its live objects
    return copy


def name(state: int) -> str:
    return task_pb2.TaskState.Name(task_pb2.TaskState.ValueType(state))


async def settle() -> None:
    """Let the dispatcher and spawned work (session cleanup, resends) run until idle."""
    for _ in range(12):
        await asyncio.sleep(0)


def update_of(task_id: str, attempt: int, kind: str) -> ss.TaskUpdate:
    parts: dict[str, Any] = {
        "accept": {"accept": ss.TaskAccept()},
        "progress": {"progress": ss.TaskProgress(message="half", percent=50)},
        "artifact": {"artifact": task_pb2.Artifact(id="out", data=b"x")},
        "input_needed": {"input_needed": ss.TaskInputNeeded(prompt="which?")},
        "result": {"result": task_pb2.Payload(content_type="text/plain", data=b"done")},
        "failure": {"failure": task_pb2.TaskError(code="INTERNAL", message="boom")},
        "reject": {"reject": ss.TaskReject(reason="not mine")},
    }
    return ss.TaskUpdate(task_id=task_id, attempt=attempt, **parts[kind])


# Where each agent update may come from and where it leads (None: state unchanged,
# "requeue": back to the queue or, out of attempts, REJECTED on the dead-letter channel).
TRANSITIONS: dict[str, tuple[frozenset[int], int | str | None]] = {
    "accept": (frozenset({ASSIGNED, WORKING}), WORKING),
    "progress": (frozenset({ASSIGNED, WORKING}), WORKING),
    "artifact": (HELD, None),
    "input_needed": (frozenset({ASSIGNED, WORKING}), INPUT_REQUIRED),
    "result": (HELD, COMPLETED),
    "failure": (HELD, FAILED),
    "reject": (frozenset({ASSIGNED, WORKING}), "requeue"),
}


@dataclass
class AgentModel:
    id: str
    caps: frozenset[str]
    max_tasks: int
    card: agent_pb2.AgentCard
    session: Session
    outbox: Outbox | None
    state: str = "live"  # live | dropped (within its grace) | gone
    assignments: set[tuple[str, int]] = field(default_factory=set)  # (task, attempt) offered
    cancels: set[tuple[str, int]] = field(default_factory=set)  # (task, attempt) taken back


@dataclass
class TaskModel:
    id: str
    caps: frozenset[str]
    target: str
    max_attempts: int
    rejecters: set[str] = field(default_factory=set)
    results: int = 0  # accepted results


class World:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.agents: dict[str, AgentModel] = {}
        self.tasks: dict[str, TaskModel] = {}
        self.keys: dict[str, str] = {}  # idempotency key -> task id
        self.events: list[str] = []  # for hypothesis' statistics
        self.prev: dict[str, task_pb2.Task] = {}
        self.step = ""
        self._agents = 0
        self._submits = 0

    # Reading the hub ----------------------------------------------------------------------

    async def task(self, task_id: str) -> task_pb2.Task:
        task = await self.hub.engine.get_task(task_id)
        assert task is not None, f"{self.step}: task {task_id} vanished"
        return clone(task)

    def drain(self) -> None:
        """What each connected agent has been sent."""
        for agent in self.agents.values():
            box = agent.outbox
            if box is None:
                continue
            items = box._items  # take() without waiting
            box._items = []
            for item in items:
                if not isinstance(item, ss.ConnectResponse):
                    continue
                kind = item.WhichOneof("frame")
                if kind == "task_assignment":
                    frame = item.task_assignment
                    assert frame.task.assigned_agent_id == agent.id
                    assert frame.attempt == frame.task.attempt
                    agent.assignments.add((frame.task.id, frame.attempt))
                elif kind == "task_cancel":
                    agent.cancels.add((item.task_cancel.task_id, item.task_cancel.attempt))

    def live(self) -> list[AgentModel]:
        return [a for a in self.agents.values() if a.state == "live"]

    @staticmethod
    def pick(items: list[Any], index: int) -> Any:
        return items[index % len(items)] if items else None

    # Operations ---------------------------------------------------------------------------

    async def join(self, caps: frozenset[str], max_tasks: int, kind: Kind) -> None:
        self._agents += 1
        agent_id = f"ag{self._agents}"
        outbox = Outbox(10_000)
        card = agent_pb2.AgentCard(
            id=agent_id, kind=kind, capabilities=sorted(caps), max_concurrent_tasks=max_tasks
        )
        hello = ss.ConnectRequest(hello=ss.Hello(card=card))
        session = await self.hub.sessions.hello(hello, PRINCIPAL, GRPC, outbox)
        assert session.agent_id == agent_id
        self.agents[agent_id] = AgentModel(
            agent_id, caps, max_tasks or DEFAULT_MAX_TASKS, card, session, outbox
        )

    async def submit(
        self,
        caps: frozenset[str],
        priority: int,
        max_attempts: int,
        preferred: list[Kind],
        target: int | None,
        key: str,
        deadline: bool,
    ) -> None:
        self._submits += 1
        request = task_pb2.Task(
            id=f"t{self._submits}",  # not random: operations pick tasks by sorted id
            required_capabilities=sorted(caps),
            priority=priority,
            max_attempts=max_attempts,
            preferred_kinds=preferred,
            idempotency_key=key,
        )
        target_agent = self.pick(sorted(self.agents), target) if target is not None else None
        if target_agent is not None:
            request.target_agent_id = target_agent
        if deadline:
            request.deadline.FromNanoseconds(time.time_ns() + 3600 * 10**9)
        known = await self.hub.engine.get_agent(target_agent) if target_agent else True
        if key in self.keys:
            task, duplicate = await self.hub.tasks.submit(PRINCIPAL, request)
            assert duplicate and task.id == self.keys[key], self.step
            return
        if not known:
            with pytest.raises(NotFound):
                await self.hub.tasks.submit(PRINCIPAL, request)
            return
        task, duplicate = await self.hub.tasks.submit(PRINCIPAL, request)
        assert not duplicate
        assert task.max_attempts == (max_attempts or 3)
        if key:
            self.keys[key] = task.id
        self.tasks[task.id] = TaskModel(task.id, caps, target_agent or "", task.max_attempts)

    async def update(
        self, index: int, kind: str, offset: int, other: int | None, current: bool
    ) -> None:
        """An agent reports on a task it was offered (one it holds now when `current`, else
        any: an old attempt, a final task), or (other) an agent reports on a task offered to
        someone else."""
        offers = sorted(
            (a.id, task_id, attempt)
            for a in self.agents.values()
            if a.state == "live" or (a.state == "gone" and not a.session.closed)
            for task_id, attempt in a.assignments
        )
        if current:
            holding = {
                (t.assigned_agent_id, t.id, t.attempt)
                for t in await self.hub.engine.list_tasks()
                if t.state in HELD
            }
            offers = [offer for offer in offers if offer in holding] or offers
        offer = self.pick(offers, index)
        if offer is None:
            return
        agent_id, task_id, attempt = offer
        if other is not None:
            agent_id = self.pick(sorted(a.id for a in self.live()), other) or agent_id
        attempt = max(attempt + offset, 0)
        agent = self.agents[agent_id]
        before = await self.task(task_id)
        sources, target = TRANSITIONS[kind]
        ok = (
            before.state in sources
            and before.assigned_agent_id == agent_id
            and before.attempt == attempt
        )
        self.step += f" [{agent_id} {kind} {task_id}#{attempt}: {name(before.state)}"
        self.step += f" on {before.assigned_agent_id}#{before.attempt} -> {ok}]"
        self.events.append(f"update {kind} {'ok' if ok else 'refused'}")
        if not ok:
            with pytest.raises(FailedPrecondition) as err:
                await self.hub.tasks.update(agent.session, update_of(task_id, attempt, kind))
            if attempt != before.attempt or agent_id != before.assigned_agent_id:
                assert f"attempt {attempt} of task {task_id} is stale" in str(err.value)
            after = await self.task(task_id)
            assert after.SerializeToString() == before.SerializeToString(), self.step
            return
        await self.hub.tasks.update(agent.session, update_of(task_id, attempt, kind))
        model = self.tasks[task_id]
        if kind == "result":
            model.results += 1
            # The same result again (a retry, a duplicate frame) is refused.
            with pytest.raises(FailedPrecondition):
                await self.hub.tasks.update(agent.session, update_of(task_id, attempt, kind))
        if kind == "reject":
            model.rejecters.add(agent_id)
        await settle()
        after = await self.task(task_id)
        if target == "requeue":
            if attempt >= before.max_attempts:
                assert after.state == REJECTED, self.step
                assert after.error.message.startswith("no attempt left after"), self.step
            else:
                self.assert_requeued(before, after)
                assert after.assigned_agent_id != agent_id, self.step
        elif target is None:
            assert after.state == before.state, self.step
        else:
            assert after.state == target, self.step
            assert after.attempt == attempt

    def assert_requeued(self, before: task_pb2.Task, after: task_pb2.Task) -> None:
        """Back in the queue, or already offered again as the next attempt."""
        if after.state == SUBMITTED:
            assert after.attempt == before.attempt and not after.assigned_agent_id, self.step
        else:
            assert after.state in HELD, self.step
            assert after.attempt == before.attempt + 1, self.step

    async def cancel(self, index: int) -> None:
        task_id = self.pick(sorted(self.tasks), index)
        if task_id is None:
            return
        before = await self.task(task_id)
        if before.state in TERMINAL:
            with pytest.raises(FailedPrecondition):
                await self.hub.tasks.cancel(PRINCIPAL, task_id, "changed my mind")
            return
        await self.hub.tasks.cancel(PRINCIPAL, task_id, "changed my mind")
        await settle()
        self.drain()
        assert (await self.task(task_id)).state == CANCELED
        holder = self.agents.get(before.assigned_agent_id)
        if before.state in HELD and holder is not None and holder.state == "live":
            assert (task_id, before.attempt) in holder.cancels, self.step

    async def provide_input(self, index: int) -> None:
        task_id = self.pick(sorted(self.tasks), index)
        if task_id is None:
            return
        before = await self.task(task_id)
        payload = task_pb2.Payload(data=b"this one")
        if before.state != INPUT_REQUIRED:
            with pytest.raises(FailedPrecondition):
                await self.hub.tasks.provide_input(PRINCIPAL, task_id, payload)
            return
        await self.hub.tasks.provide_input(PRINCIPAL, task_id, payload)
        assert (await self.task(task_id)).state == WORKING

    async def status(self, index: int, status: Status) -> None:
        agent = self.pick(self.live(), index)
        if agent is not None:
            await self.hub.agents.heartbeat(PRINCIPAL, agent.id, status)

    async def leave(self, index: int, how: str) -> None:
        agent = self.pick(self.live(), index)
        if agent is None:
            return
        held = [t for t in await self.hub.engine.list_tasks() if t.assigned_agent_id == agent.id]
        before = {t.id: clone(t) for t in held if t.state in HELD}
        if how == "goodbye":
            await agent.session.handle(ss.ConnectRequest(goodbye=ss.Goodbye(reason="done")))
        elif how == "deregister":
            await self.hub.agents.deregister(PRINCIPAL, agent.id)
        else:  # the registration goes; the session (a zombie) may still send updates
            await self.hub.agents.remove(agent.id, "gone")
        agent.state = "gone"
        await settle()
        assert await self.hub.engine.get_agent(agent.id) is None
        for task_id, old in before.items():
            self.assert_retried(old, await self.task(task_id))

    def assert_retried(self, before: task_pb2.Task, after: task_pb2.Task) -> None:
        """The task left its agent: another attempt, or failed on the dead-letter channel."""
        if before.attempt >= before.max_attempts:
            assert after.state == FAILED, self.step
            assert after.error.code == "RESOURCE_EXHAUSTED", self.step
        else:
            self.assert_requeued(before, after)

    async def drop(self, index: int, lost: bool) -> None:
        """The connection breaks without a goodbye: the session waits for a resume. With
        `lost`, the assignments not yet accepted were still in flight: the agent never saw
        them, and a resume must offer them again."""
        agent = self.pick(self.live(), index)
        if agent is None or agent.outbox is None:
            return
        if lost:
            agent.assignments -= {
                (t.id, t.attempt)
                for t in await self.hub.engine.list_tasks()
                if t.state == ASSIGNED and t.assigned_agent_id == agent.id
            }
        agent.session.detach(agent.outbox)
        agent.outbox = None
        agent.state = "dropped"
        await settle()
        stored = await self.hub.engine.get_agent(agent.id)
        assert stored is not None and stored.status == OFFLINE, self.step

    async def restart(self, index: int) -> None:
        """The agent's process restarts and says hello with its card again (no resume token):
        a dropped registration is taken over, and the tasks it held go back to the queue (the
        new process knows nothing of them); a connected one is refused."""
        agent = self.pick([a for a in self.agents.values() if a.state != "gone"], index)
        if agent is None:
            return
        hello = ss.ConnectRequest(hello=ss.Hello(card=agent.card))
        outbox = Outbox(10_000)
        if agent.state == "live":
            with pytest.raises(AlreadyExists):
                await self.hub.sessions.hello(hello, PRINCIPAL, GRPC, outbox)
            return
        before = {
            t.id: clone(t)
            for t in await self.hub.engine.list_tasks()
            if t.state in HELD and t.assigned_agent_id == agent.id
        }
        old = agent.session
        agent.session = await self.hub.sessions.hello(hello, PRINCIPAL, GRPC, outbox)
        agent.outbox, agent.state = outbox, "live"
        agent.assignments, agent.cancels = set(), set()
        await settle()
        assert old.closed and agent.session is not old, self.step
        for task_id, old_task in before.items():
            self.assert_retried(old_task, await self.task(task_id))

    async def resume(self, index: int) -> None:
        dropped = [a for a in self.agents.values() if a.state == "dropped"]
        agent = self.pick(dropped, index)
        if agent is None:
            return
        outbox = Outbox(10_000)
        hello = ss.ConnectRequest(hello=ss.Hello(resume_token=agent.session.token))
        session = await self.hub.sessions.hello(hello, PRINCIPAL, GRPC, outbox)
        assert session is agent.session
        agent.outbox = outbox
        agent.state = "live"
        await settle()
        stored = await self.hub.engine.get_agent(agent.id)
        assert stored is not None and stored.status == ONLINE, self.step

    async def grace_expires(self) -> None:
        """Dropped agents did not come back within the grace period: their tasks move on."""
        dropped = [a for a in self.agents.values() if a.state == "dropped"]
        before = {
            t.id: clone(t)
            for t in await self.hub.engine.list_tasks()
            if t.state in HELD and t.assigned_agent_id in {a.id for a in dropped}
        }
        self.hub.sessions.tick(time.time_ns() + int((GRACE + 1) * 1e9))
        await settle()
        for agent in dropped:
            agent.state = "gone"
            assert agent.session.closed
            assert await self.hub.engine.get_agent(agent.id) is None, self.step
        for task_id, old in before.items():
            self.assert_retried(old, await self.task(task_id))

    async def leases_expire(self) -> None:
        """No accept within the ack deadline: the task goes to another attempt."""
        before = {t.id: clone(t) for t in await self.hub.engine.list_tasks() if t.state == ASSIGNED}
        await self.hub.tasks.tick(time.time_ns() + int((ACK_DEADLINE + 1) * 1e9))
        await settle()
        self.drain()
        for task_id, old in before.items():
            self.assert_retried(old, await self.task(task_id))
            holder = self.agents[old.assigned_agent_id]
            if holder.state == "live":
                assert (task_id, old.attempt) in holder.cancels, self.step

    async def deadlines_pass(self) -> None:
        """Far in the future: every task with a deadline that is not final fails."""
        await self.hub.tasks.tick(time.time_ns() + 7200 * 10**9)
        await settle()
        for task in await self.hub.engine.list_tasks():
            if task.HasField("deadline"):
                assert task.state in TERMINAL, self.step

    # Invariants ---------------------------------------------------------------------------

    async def check(self) -> None:
        engine = self.hub.engine
        self.drain()
        tasks = {t.id: clone(t) for t in await engine.list_tasks()}
        pending = await engine.pending_tasks()
        agents = {a.card.id: a for a in await engine.list_agents()}
        step = self.step
        # Every submitted task is known, and nothing else (idempotent resubmits add nothing).
        assert set(tasks) == set(self.tasks), step
        assert len(pending) == len(set(pending)), step
        held: Counter[str] = Counter()
        for task_id, task in tasks.items():
            model = self.tasks[task_id]
            prev = self.prev.get(task_id)
            # No task is lost: queued, held by one existing agent, or final.
            if task.state == SUBMITTED:
                assert task_id in pending, f"{step}: {task_id} SUBMITTED but not queued"
                assert not task.assigned_agent_id, step
            elif task.state in HELD:
                assert task_id not in pending, step
                assert task.assigned_agent_id in agents, (
                    f"{step}: {task_id} held by {task.assigned_agent_id}, who is not registered"
                )
                held[task.assigned_agent_id] += 1
                assert task.attempt >= 1, step
            else:
                assert task.state in TERMINAL, step
                assert task_id not in pending, step
            # Attempts only grow, within max_attempts; final states never change.
            assert task.attempt <= task.max_attempts, step
            assert model.results == (1 if task.state == COMPLETED else 0), step
            if prev is not None:
                assert task.attempt >= prev.attempt, step
                if prev.state in TERMINAL:
                    assert task.SerializeToString() == prev.SerializeToString(), (
                        f"{step}: final task {task_id} changed"
                    )
            # A new assignment went to a capable ONLINE agent, as the task asked.
            fresh = prev is None or task.attempt != prev.attempt
            if task.state in HELD and fresh:
                agent_id = task.assigned_agent_id
                assert model.caps <= self.agents[agent_id].caps, step
                assert not model.target or model.target == agent_id, step
                assert agent_id not in model.rejecters, step
                assert agents[agent_id].status == ONLINE, step
            # A connected agent was told about every task it holds.
            holder = self.agents.get(task.assigned_agent_id)
            if task.state in HELD and holder is not None and holder.state == "live":
                assert (task_id, task.attempt) in holder.assignments, (
                    f"{step}: {holder.id} holds {task_id}#{task.attempt} but was not told"
                )
        # No agent over its max, and the hub's count of its tasks is right.
        for agent_id, record in agents.items():
            assert held[agent_id] <= self.agents[agent_id].max_tasks, (
                f"{step}: {agent_id} holds {held[agent_id]} > {self.agents[agent_id].max_tasks}"
            )
            assert record.active_tasks == held[agent_id], (
                f"{step}: {agent_id} active_tasks {record.active_tasks} != {held[agent_id]}"
            )
        # Nothing waits while an agent that can take it has room.
        for task_id in pending:
            model = self.tasks[task_id]
            for agent in self.live():
                stored = agents.get(agent.id)
                if (
                    stored is not None
                    and stored.status == ONLINE
                    and held[agent.id] < agent.max_tasks
                    and model.caps <= agent.caps
                    and model.target in ("", agent.id)
                    and agent.id not in model.rejecters
                ):
                    pytest.fail(f"{step}: {task_id} waits while {agent.id} could take it")
        # The dead-letter channel holds exactly the tasks that ran out of attempts, once each.
        page = await self.hub.read(DLQ, None, None, 1000)
        dead = [entry.envelope.headers["task"] for entry in page.entries]
        assert len(dead) == len(set(dead)), step
        exhausted = {
            t.id
            for t in tasks.values()
            if t.state in (FAILED, REJECTED) and t.error.message.startswith("no attempt left")
        }
        assert set(dead) == exhausted, step
        for entry in page.entries:
            task = task_pb2.Task.FromString(entry.envelope.payload)
            assert task.state in (FAILED, REJECTED), step
            assert task.attempt == task.max_attempts, step
        self.prev = tasks


# Operations as data ------------------------------------------------------------------------------

caps_st = st.frozensets(st.sampled_from(CAPS), max_size=2)
index = st.integers(0, 50)
update_kinds = st.sampled_from(
    [
        *("accept", "accept", "progress", "artifact", "input_needed"),
        *("result", "result", "failure", "reject", "reject"),
    ]
)
Op = tuple[Any, ...]
join = st.tuples(st.just("join"), caps_st, st.integers(0, 3), st.sampled_from(KINDS))
submit = st.tuples(
    st.just("submit"),
    st.frozensets(st.sampled_from(CAPS), max_size=1),
    st.integers(-1, 2),  # priority
    st.integers(0, 3),  # max_attempts (0: the default, 3)
    st.lists(st.sampled_from(KINDS), max_size=2),  # preferred kinds
    st.none() | st.none() | st.none() | index,  # a target agent (any ever registered)
    st.sampled_from(["", "", "", "k1", "k2"]),  # idempotency key
    st.booleans(),  # a deadline
)
# An update on an offer, from its agent with its attempt (mostly), or off by one, or from
# another agent.
update = st.tuples(
    st.just("update"),
    index,
    update_kinds,
    st.sampled_from([0, 0, 0, 0, 0, -1, 1]),
    st.none() | st.none() | st.none() | index,
    st.sampled_from([True, True, True, False]),
)
OPERATIONS: dict[str, st.SearchStrategy[Op]] = {
    "join": join,
    "submit": submit,
    "update": update,
    "cancel": st.tuples(st.just("cancel"), index),
    "input": st.tuples(st.just("input"), index),
    "status": st.tuples(st.just("status"), index, st.sampled_from(SELF_REPORTED)),
    "leave": st.tuples(
        st.just("leave"), index, st.sampled_from(["goodbye", "deregister", "remove"])
    ),
    "drop": st.tuples(st.just("drop"), index, st.booleans()),
    "resume": st.tuples(st.just("resume"), index),
    "restart": st.tuples(st.just("restart"), index),
    "grace": st.tuples(st.just("grace")),
    "leases": st.tuples(st.just("leases")),
    "deadlines": st.tuples(st.just("deadlines")),
}
# How often each operation comes up: mostly submits and updates, so that tasks get far.
WEIGHTS = {"submit": 5, "update": 12, "join": 2, "status": 2, "drop": 2, "resume": 2}
operations: st.SearchStrategy[Op] = st.sampled_from(
    [op for op in OPERATIONS for _ in range(WEIGHTS.get(op, 1))]
).flatmap(OPERATIONS.__getitem__)


async def run(world: World, op: Op) -> None:
    what, *args = op
    if what == "join":
        await world.join(*args)
    elif what == "submit":
        await world.submit(*args)
    elif what == "update":
        await world.update(*args)
    elif what == "cancel":
        await world.cancel(*args)
    elif what == "input":
        await world.provide_input(*args)
    elif what == "status":
        await world.status(*args)
    elif what == "leave":
        await world.leave(*args)
    elif what == "drop":
        await world.drop(*args)
    elif what == "resume":
        await world.resume(*args)
    elif what == "restart":
        await world.restart(*args)
    elif what == "grace":
        await world.grace_expires()
    elif what == "leases":
        await world.leases_expire()
    else:
        await world.deadlines_pass()


async def scenario(agents: list[Op], ops: list[Op]) -> World:
    """Run the operations on a fresh hub, checking the invariants after each one."""
    hub = Hub(model_settings())
    await hub.start()
    try:
        world = World(hub)
        for i, op in enumerate([*agents, *ops]):
            world.step = f"step {i} {op[0]}{op[1:]!r}"
            await run(world, op)
            await settle()
            await world.check()
        for task in world.prev.values():
            world.events.append(f"ends {name(task.state)}")
            if task.attempt > 1:
                world.events.append("a task had several attempts")
        return world
    finally:
        await hub.stop()


initial_agents = st.lists(
    st.tuples(st.just("join"), caps_st, st.integers(0, 3), st.sampled_from(KINDS)),
    min_size=1,
    max_size=4,
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(agents=initial_agents, ops=st.lists(operations, min_size=10, max_size=30))
def test_task_manager_keeps_its_invariants(agents: list[Op], ops: list[Op]) -> None:
    world = asyncio.run(scenario(agents, ops))
    for text in sorted(set(world.events)):
        event(text)


# Scenarios that random operations reach only now and then, replayed every time.
ANY: frozenset[str] = frozenset()
JOIN: Op = ("join", ANY, 1, agent_pb2.AGENT_KIND_CUSTOM)
JOIN2: Op = ("join", ANY, 2, agent_pb2.AGENT_KIND_CUSTOM)
SUBMIT: Op = ("submit", ANY, 0, 0, [], None, "", False)
SUBMIT_ONCE: Op = ("submit", ANY, 0, 1, [], None, "", False)
CURRENT = 0  # offset: the offer's own attempt


def accept(current: bool = True) -> Op:
    return ("update", 0, "accept", CURRENT, None, current)


def result(offset: int = CURRENT, current: bool = True) -> Op:
    return ("update", 0, "result", offset, None, current)


# name: (operations, how each task (t1, t2, ...) ends: "STATE#attempt@agent")
# fmt: off
SCENARIOS: dict[str, tuple[list[Op], list[str]]] = {
    "nothing happens": ([JOIN], []),
    "resume offers again what was in flight": (
        [JOIN, SUBMIT, ("drop", 0, True), ("resume", 0)],
        ["ASSIGNED#1@ag1"],
    ),
    "a held task survives a drop and a resume": (
        [JOIN, SUBMIT, accept(), ("drop", 0, False), ("resume", 0), result()],
        ["COMPLETED#1@ag1"],
    ),
    "a restarted agent takes over its dropped registration, not its live one": (
        [JOIN2, SUBMIT, SUBMIT, accept(), ("restart", 0), ("drop", 0, False), ("restart", 0)],
        ["ASSIGNED#2@ag1", "ASSIGNED#2@ag1"],
    ),
    "grace expiry sends the tasks elsewhere": (
        [JOIN, JOIN, SUBMIT, SUBMIT, accept(), ("drop", 0, False), ("grace",), JOIN],
        ["ASSIGNED#2@ag3", "ASSIGNED#1@ag2"],
    ),
    "goodbye, deregister and removal send the tasks elsewhere": (
        [
            JOIN, JOIN, JOIN, SUBMIT, SUBMIT, SUBMIT,
            ("leave", 0, "goodbye"), JOIN, ("leave", 0, "deregister"), JOIN,
            ("leave", 0, "remove"), JOIN,
            result(current=False),  # the removed agent's session reports: refused
        ],
        ["ASSIGNED#2@ag4", "ASSIGNED#2@ag5", "ASSIGNED#2@ag6"],
    ),
    "rejections until no attempt is left": (
        [JOIN, JOIN, JOIN, SUBMIT, *[("update", 0, "reject", CURRENT, None, True)] * 3],
        ["REJECTED#3@ag3"],
    ),
    "leases run out until no attempt is left": (
        [JOIN, SUBMIT, ("leases",), ("leases",), ("leases",), ("leases",)],
        ["FAILED#3@ag1"],
    ),
    "an agent that leaves on its last attempt fails the task": (
        [JOIN, SUBMIT_ONCE, ("leave", 0, "goodbye"), JOIN],
        ["FAILED#1@ag1"],
    ),
    "input required, input given, completed, completed again": (
        [
            JOIN2, SUBMIT, ("update", 0, "input_needed", CURRENT, None, True), ("input", 0),
            result(), result(current=False),
        ],
        ["COMPLETED#1@ag1"],
    ),
    "capacity frees up: the waiting task goes at once": (
        [JOIN, SUBMIT, SUBMIT, result()],
        ["COMPLETED#1@ag1", "ASSIGNED#1@ag1"],
    ),
    "an agent draining or waiting for input gets nothing new": (
        [
            JOIN2, ("status", 0, agent_pb2.AGENT_STATUS_DRAINING), SUBMIT,
            ("status", 0, agent_pb2.AGENT_STATUS_WAITING_INPUT), SUBMIT,
            ("status", 0, agent_pb2.AGENT_STATUS_ONLINE),
        ],
        ["ASSIGNED#1@ag1", "ASSIGNED#1@ag1"],
    ),
    "cancel a queued, a held and a final task": (
        [JOIN, SUBMIT, SUBMIT, ("cancel", 1), ("cancel", 0), ("cancel", 0)],
        ["CANCELED#1@ag1", "CANCELED#0@"],
    ),
    "deadlines pass for a working and a queued task": (
        [
            JOIN, ("submit", ANY, 0, 0, [], None, "", True), accept(),
            ("submit", ANY, 0, 0, [], None, "", True), ("deadlines",),
        ],
        ["FAILED#1@ag1", "FAILED#0@"],
    ),
    "a stale attempt after a lease ran out": (
        [JOIN, SUBMIT, ("leases",), result(-1), result()],
        ["COMPLETED#2@ag1"],
    ),
    "the same idempotency key twice makes one task": (
        [
            JOIN, ("submit", ANY, 0, 0, [], None, "k1", False),
            ("submit", ANY, 0, 0, [], None, "k1", False),
        ],
        ["ASSIGNED#1@ag1"],
    ),
}
# fmt: on


@pytest.mark.parametrize(("ops", "ends"), list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_scenario(ops: list[Op], ends: list[str]) -> None:
    world = asyncio.run(scenario([], ops))
    tasks = sorted(world.prev.values(), key=lambda t: int(t.id[1:]))
    assert [
        f"{name(t.state).removeprefix('TASK_STATE_')}#{t.attempt}@{t.assigned_agent_id}"
        for t in tasks
    ] == ends


# Examples that pin single behaviours ------------------------------------------------------------


class Harness:
    """One hub with helpers for the examples below."""

    def __init__(self, hub: Hub) -> None:
        self.world = World(hub)
        self.hub = hub

    async def agent(self, caps: frozenset[str] = frozenset(), max_tasks: int = 1) -> AgentModel:
        await self.world.join(caps, max_tasks, agent_pb2.AGENT_KIND_CUSTOM)
        return self.world.agents[f"ag{self.world._agents}"]

    async def submit(self, **fields: Any) -> str:
        task, _ = await self.hub.tasks.submit(PRINCIPAL, task_pb2.Task(**fields))
        self.world.tasks[task.id] = TaskModel(
            task.id,
            frozenset(task.required_capabilities),
            task.target_agent_id,
            task.max_attempts,
        )
        await settle()
        return task.id

    async def state(self, task_id: str) -> task_pb2.Task:
        return await self.world.task(task_id)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    hub = Hub(model_settings())
    await hub.start()
    try:
        yield Harness(hub)
    finally:
        await hub.stop()


async def test_waiting_tasks_go_in_priority_order_then_first_come(harness: Harness) -> None:
    low = await harness.submit(priority=0)
    high = await harness.submit(priority=5)
    low2 = await harness.submit(priority=0)
    agent = await harness.agent(max_tasks=1)
    order = []
    for _ in range(3):
        await settle()
        held = [t for t in await harness.hub.engine.list_tasks() if t.state == ASSIGNED]
        assert len(held) == 1
        order.append(held[0].id)
        await harness.hub.tasks.update(agent.session, update_of(held[0].id, 1, "result"))
    assert order == [high, low, low2]


async def test_a_retried_task_keeps_its_place_in_the_queue(harness: Harness) -> None:
    first = await harness.submit()
    agent = await harness.agent(max_tasks=1)
    await settle()
    assert (await harness.state(first)).assigned_agent_id == agent.id
    second = await harness.submit()
    # The lease runs out: the first task goes back ahead of the second one.
    await harness.hub.tasks.tick(time.time_ns() + int((ACK_DEADLINE + 1) * 1e9))
    await settle()
    task = await harness.state(first)
    assert task.attempt == 2 and task.state == ASSIGNED
    assert (await harness.state(second)).state == SUBMITTED


async def test_a_rejecting_agent_is_not_offered_the_task_again(harness: Harness) -> None:
    a = await harness.agent(max_tasks=2)
    task_id = await harness.submit(max_attempts=3)
    await harness.hub.tasks.update(a.session, update_of(task_id, 1, "reject"))
    await settle()
    task = await harness.state(task_id)
    assert task.state == SUBMITTED and task.attempt == 1
    b = await harness.agent()
    await settle()
    task = await harness.state(task_id)
    assert (task.assigned_agent_id, task.attempt) == (b.id, 2)


async def test_out_of_attempts_goes_to_the_dead_letter_channel(harness: Harness) -> None:
    a = await harness.agent()
    task_id = await harness.submit(max_attempts=2)
    for attempt in (1, 2):
        assert (await harness.state(task_id)).attempt == attempt
        await harness.hub.tasks.tick(time.time_ns() + int((ACK_DEADLINE + 1) * 1e9))
        await settle()
    task = await harness.state(task_id)
    assert task.state == FAILED and task.attempt == 2
    assert task.error.code == "RESOURCE_EXHAUSTED"
    page = await harness.hub.read(DLQ, None, None, 10)
    (entry,) = page.entries
    assert entry.envelope.headers["task"] == task_id
    assert task_pb2.Task.FromString(entry.envelope.payload).state == FAILED
    harness.world.drain()
    assert (task_id, 1) in a.cancels and (task_id, 2) in a.cancels


async def test_a_second_result_is_refused(harness: Harness) -> None:
    a = await harness.agent()
    task_id = await harness.submit()
    await harness.hub.tasks.update(a.session, update_of(task_id, 1, "accept"))
    await harness.hub.tasks.update(a.session, update_of(task_id, 1, "result"))
    with pytest.raises(FailedPrecondition) as err:
        await harness.hub.tasks.update(a.session, update_of(task_id, 1, "result"))
    assert "COMPLETED: it takes no more updates" in str(err.value)
    task = await harness.state(task_id)
    assert task.state == COMPLETED and task.result.data == b"done"


async def test_a_stale_attempt_is_refused_after_a_retry(harness: Harness) -> None:
    a = await harness.agent()
    task_id = await harness.submit()
    await harness.hub.tasks.tick(time.time_ns() + int((ACK_DEADLINE + 1) * 1e9))
    await settle()
    assert (await harness.state(task_id)).attempt == 2
    with pytest.raises(FailedPrecondition) as err:
        await harness.hub.tasks.update(a.session, update_of(task_id, 1, "result"))
    assert f"attempt 1 of task {task_id} is stale: the task is on attempt 2" in str(err.value)
    await harness.hub.tasks.update(a.session, update_of(task_id, 2, "result"))
    assert (await harness.state(task_id)).state == COMPLETED


async def test_an_artifact_before_accept_does_not_cancel_the_accept_deadline(
    harness: Harness,
) -> None:
    a = await harness.agent()
    task_id = await harness.submit()
    await harness.hub.tasks.update(a.session, update_of(task_id, 1, "artifact"))
    assert (await harness.state(task_id)).state == ASSIGNED  # not accepted
    await harness.hub.tasks.tick(time.time_ns() + int((ACK_DEADLINE + 1) * 1e9))
    await settle()
    task = await harness.state(task_id)
    # An artifact is no accept: after the ack deadline, another attempt (the only agent again).
    assert task.attempt == 2, f"still {name(task.state)} on attempt {task.attempt}"


async def test_a_refused_submit_does_not_spoil_its_idempotency_key(harness: Harness) -> None:
    submit = harness.hub.tasks.submit
    with pytest.raises(NotFound):
        await submit(PRINCIPAL, task_pb2.Task(idempotency_key="k", target_agent_id="nobody"))
    first, first_duplicate = await submit(PRINCIPAL, task_pb2.Task(idempotency_key="k"))
    again, again_duplicate = await submit(PRINCIPAL, task_pb2.Task(idempotency_key="k"))
    stored = sorted(t.id for t in await harness.hub.engine.list_tasks())
    assert (first_duplicate, again_duplicate, stored) == (False, True, [first.id]), (
        f"retrying with the key made {len(stored)} tasks"
    )
    assert again.id == first.id


async def test_an_existing_task_id_without_a_key_is_refused(harness: Harness) -> None:
    await harness.hub.tasks.submit(PRINCIPAL, task_pb2.Task(id="same"))
    with pytest.raises(FailedPrecondition) as err:
        await harness.hub.tasks.submit(PRINCIPAL, task_pb2.Task(id="same", priority=3))
    assert "task same exists; use an idempotency_key to retry" in str(err.value)
    assert len(await harness.hub.engine.list_tasks()) == 1


async def test_a_retried_submit_returns_the_first_task(harness: Harness) -> None:
    submit = harness.hub.tasks.submit
    first, first_duplicate = await submit(PRINCIPAL, task_pb2.Task(idempotency_key="k"))
    again, again_duplicate = await submit(
        PRINCIPAL, task_pb2.Task(idempotency_key="k", priority=9, target_agent_id="nobody")
    )
    assert (first_duplicate, again_duplicate, again.id) == (False, True, first.id)
    assert again.priority == 0  # the original, not the retry's fields
    assert len(await harness.hub.engine.list_tasks()) == 1


async def test_an_agent_that_resumes_at_once_is_online(harness: Harness) -> None:
    """The OFFLINE change that a drop spawns must not win over a resume that came first."""
    a = await harness.agent()
    assert a.outbox is not None
    a.session.detach(a.outbox)
    hello = ss.ConnectRequest(hello=ss.Hello(resume_token=a.session.token))
    await harness.hub.sessions.hello(hello, PRINCIPAL, GRPC, Outbox(100))
    await settle()
    stored = await harness.hub.engine.get_agent(a.id)
    assert stored is not None
    task_id = await harness.submit()
    assert a.session.attached
    status = agent_pb2.AgentStatus.Name(stored.status)
    assert (status, name((await harness.state(task_id)).state)) == (
        "AGENT_STATUS_ONLINE",
        "TASK_STATE_ASSIGNED",
    )


def frames(outbox: Outbox) -> list[ss.ConnectResponse]:
    return [item for item in outbox._items if isinstance(item, ss.ConnectResponse)]


async def drop_and_resume(harness: Harness, agent: AgentModel, meanwhile: Any) -> Outbox:
    """Drop the agent's connection, run `meanwhile` while it is away, resume it."""
    assert agent.outbox is not None
    agent.session.detach(agent.outbox)
    await settle()
    await meanwhile()
    outbox = Outbox(100)
    hello = ss.ConnectRequest(hello=ss.Hello(resume_token=agent.session.token))
    await harness.hub.sessions.hello(hello, PRINCIPAL, GRPC, outbox)
    await settle()
    return outbox


async def test_input_given_while_the_agent_is_away_reaches_it_on_resume(
    harness: Harness,
) -> None:
    a = await harness.agent()
    task_id = await harness.submit()
    await harness.hub.tasks.update(a.session, update_of(task_id, 1, "input_needed"))
    refused = False

    async def give_input() -> None:
        nonlocal refused
        try:
            await harness.hub.tasks.provide_input(PRINCIPAL, task_id, task_pb2.Payload(data=b"x"))
        except HubError:
            refused = True  # also fine: the input is not taken while nobody can receive it

    outbox = await drop_and_resume(harness, a, give_input)
    if refused:
        assert (await harness.state(task_id)).state == INPUT_REQUIRED
        return
    inputs = [f.task_input for f in frames(outbox) if f.WhichOneof("frame") == "task_input"]
    assert [(i.task_id, i.input.data) for i in inputs] == [(task_id, b"x")], (
        f"the resumed agent got {[f.WhichOneof('frame') for f in frames(outbox)]}"
    )


async def test_a_cancel_while_the_agent_is_away_reaches_it_on_resume(harness: Harness) -> None:
    a = await harness.agent()
    task_id = await harness.submit()
    await harness.hub.tasks.update(a.session, update_of(task_id, 1, "accept"))

    async def cancel() -> None:
        await harness.hub.tasks.cancel(PRINCIPAL, task_id, "not needed")

    outbox = await drop_and_resume(harness, a, cancel)
    assert (await harness.state(task_id)).state == CANCELED
    cancels = [f.task_cancel for f in frames(outbox) if f.WhichOneof("frame") == "task_cancel"]
    assert [(c.task_id, c.attempt) for c in cancels] == [(task_id, 1)], (
        f"the resumed agent got {[f.WhichOneof('frame') for f in frames(outbox)]}"
    )


# The hub's routing decision, end to end ----------------------------------------------------------


# An agent of a fleet: capabilities, max tasks, kind, tasks held, had a task and finished it,
# status.
Member: TypeAlias = tuple[frozenset[str], int, Kind, int, bool, Status]


@st.composite
def fleets(draw: st.DrawFn) -> list[Member]:
    """Agents: (capabilities, max tasks, kind, tasks held, had a task and finished it, status)."""
    agents: list[Member] = []
    for _ in range(draw(st.integers(1, 6))):
        max_tasks = draw(st.integers(1, 3))
        agents.append(
            (
                draw(caps_st),
                max_tasks,
                draw(st.sampled_from(KINDS)),
                draw(st.integers(0, max_tasks)),
                draw(st.booleans()),
                draw(st.sampled_from([ONLINE, ONLINE, ONLINE, *SELF_REPORTED[1:]])),
            )
        )
    return agents


async def route_once(
    fleet: list[Member],
    needs: tuple[frozenset[str], list[Kind]],
) -> None:
    hub = Hub(model_settings())
    await hub.start()
    try:
        harness = Harness(hub)
        for caps, max_tasks, kind, *_ in fleet:
            await harness.world.join(caps, max_tasks, kind)
        # Idle since a task ended rather than since joining, in the reverse order of joining.
        for i in reversed(range(len(fleet))):
            agent = harness.world.agents[f"ag{i + 1}"]
            if fleet[i][4]:
                done = await harness.submit(target_agent_id=agent.id)
                await hub.tasks.update(agent.session, update_of(done, 1, "result"))
        for i, (*_, held, _, _) in enumerate(fleet):
            for _ in range(held):
                await harness.submit(target_agent_id=f"ag{i + 1}")
        for i, (*_, status) in enumerate(fleet):
            await hub.agents.heartbeat(PRINCIPAL, f"ag{i + 1}", status)
        await settle()
        slots = {a.card.id: slot_of(a) for a in await hub.engine.list_agents()}
        for (_, _, _, held, _, _), agent_id in zip(
            fleet, sorted(slots, key=lambda i: int(i[2:])), strict=True
        ):
            assert slots[agent_id].active == held
        caps, preferred = needs
        expected = reference_route(slots, Needs(caps, tuple(preferred)))
        task_id = await harness.submit(
            required_capabilities=sorted(caps), preferred_kinds=preferred
        )
        task = await harness.state(task_id)
        assert (task.assigned_agent_id or None) == expected, slots
    finally:
        await hub.stop()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fleet=fleets(),
    needs=st.tuples(caps_st, st.lists(st.sampled_from(KINDS), max_size=2)),
)
def test_the_hub_routes_by_the_rule(
    fleet: list[Member],
    needs: tuple[frozenset[str], list[Kind]],
) -> None:
    """Agents of several kinds, loads, idle times and statuses: a new task goes where the
    brute-force reference of the routing rule says (or waits when it says nobody)."""
    asyncio.run(route_once(fleet, needs))
