"""Tasks: submit, route to agents over their sessions, leases and retries, cancel, input,
handoff and watch. Decisions come from the pure modules (`core.routing`, `core.tasks`); this
module applies them, stores the outcome in the engine and tells whoever needs to know."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from agentplex import audit
from agentplex.background import cancel_and_wait
from agentplex.core import authz, tasks as machine, wire
from agentplex.core.channel_log import Accepted
from agentplex.core.clock import set_time, timestamp
from agentplex.core.histogram import Histogram
from agentplex.core.principal import Principal
from agentplex.core.routing import Needs, RoutingTable, slot_of
from agentplex.core.validation import check_id
from agentplex.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from agentplex.v1 import (
    agent_pb2,
    envelope_pb2,
    session_service_pb2 as ss,
    task_pb2,
)

if TYPE_CHECKING:
    from agentplex.hub.hub import Hub
    from agentplex.hub.session import Session

log = logging.getLogger("agentplex.tasks")

SYS_TASKS = "_sys.tasks"
DISPATCH_PAGE = 64
DLQ_TASKS = "_dlq.tasks"
EVENT = task_pb2  # its TASK_EVENT_TYPE_* constants (reading them off the enum wrapper is slow)
# A `_sys.tasks` envelope's shared part, and each state's header, encoded once.
_EVENT_ENVELOPE = wire.event_envelope(SYS_TASKS, "agentplex.v1.TaskEvent")
_STATE_HEADERS = {
    value.number: wire.map_entry(6, "state", machine.state_name(value.number))
    for value in task_pb2.TaskState.DESCRIPTOR.values
}


class _Watch:
    """One watcher's queue of live events (bounded: a watcher that falls behind is ended)."""

    __slots__ = ("overflowed", "queue")

    def __init__(self, limit: int) -> None:
        self.queue: asyncio.Queue[task_pb2.TaskEvent] = asyncio.Queue(limit)
        self.overflowed = False

    def put(self, event: task_pb2.TaskEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True


class _TaskEvents:
    """The task manager's own subscription to `_sys.tasks`: every node hears every task event,
    whichever node made it, so a watcher on any node sees it."""

    __slots__ = ("manager",)

    def __init__(self, manager: TaskManager) -> None:
        self.manager = manager

    def deliver(self, entry: Accepted) -> None:
        self.manager.heard(entry.envelope)


class TaskManager:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.engine = hub.engine
        self.cfg = hub.settings.tasks
        self.table = RoutingTable()
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._leases: dict[str, int] = {}  # ASSIGNED task -> accept deadline (ns)
        self._held: dict[str, set[str]] = {}  # agent id -> task ids it holds
        self._rejected: dict[str, set[str]] = {}  # task id -> agents that rejected it
        self._watchers: dict[str, set[_Watch]] = {}
        self._finished: deque[tuple[int, str]] = deque()  # (completed ns, task id), in order
        self._missed: dict[str, list[ss.ConnectResponse]] = {}  # for detached sessions
        self._events = _TaskEvents(self)
        self.routing = Histogram()  # seconds per routing decision

    # Lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch_forever())
        await self.hub.listen(self._events, SYS_TASKS)

    async def stop(self) -> None:
        await cancel_and_wait(self._dispatcher)

    def wake(self) -> None:
        self._wake.set()

    # Agents -------------------------------------------------------------------------------

    def agent_online(self, agent: agent_pb2.Agent) -> None:
        """An agent with a live session on this node can take work."""
        slot = slot_of(agent)
        slot.active = len(self._held.get(agent.card.id, ()))
        self.table.put(slot)
        self.wake()

    async def reconcile(self, agent_id: str) -> int:
        """Drop the holds of an agent here on tasks the engine shows elsewhere (sent to another
        agent while this node was taken for dead); returns how many it still holds. Whatever
        the agent reports on a dropped task is refused as a stale attempt."""
        held = self._held.get(agent_id, set())
        for task_id in list(held):
            task = await self.engine.get_task(task_id)
            if task is None or task.assigned_agent_id != agent_id or task.state not in machine.HELD:
                held.discard(task_id)
        return len(held)

    def agent_status(self, agent_id: str, status: int) -> None:
        if self.table.update(agent_id, status=status) is not None:
            self.wake()

    async def agent_gone(self, agent_id: str, reason: str) -> None:
        """The agent left for good: every task it held goes to another agent."""
        self.table.remove(agent_id)
        self._missed.pop(agent_id, None)
        for task_id in list(self._held.pop(agent_id, ())):
            task = await self.engine.get_task(task_id)
            if task is not None and task.state in machine.HELD:
                await self._retry(task, f"agent {agent_id} left ({reason})", cancel=False)

    async def orphaned(self, agent_ids: set[str], reason: str) -> None:
        """Agents of a node that died: the tasks they held (found in the engine, as only the
        dead node knew them) go to other agents."""
        for task in await self.engine.list_tasks():
            if task.assigned_agent_id in agent_ids and task.state in machine.HELD:
                await self._retry(
                    task, f"agent {task.assigned_agent_id} left ({reason})", cancel=False
                )

    async def from_other_node(self, agent_id: str, frame: ss.ConnectResponse) -> None:
        """A frame another node sent for an agent whose session is here. A cancel also ends
        this node's hold on the task."""
        if frame.HasField("task_cancel"):
            await self._drop_hold(agent_id, frame.task_cancel.task_id)
        if self.hub.sessions.holding(agent_id) is not None:
            self._tell(agent_id, frame)

    def heard(self, envelope: envelope_pb2.Envelope) -> None:
        """A task event from any node: feed this node's watchers of the task."""
        watchers = self._watchers.get(envelope.headers["task"])
        if watchers:
            event = task_pb2.TaskEvent.FromString(envelope.payload)
            for watch in watchers:
                watch.put(event)

    def resumed(self, session: Session) -> None:
        """A resumed session gets what it missed while it was away: cancels and input first,
        then the assignments it has not accepted yet."""
        for frame in self._missed.pop(session.agent_id, ()):
            session.send(frame)
        self.hub.spawn(self._resend_assignments(session))

    def _tell(self, agent_id: str, frame: ss.ConnectResponse) -> None:
        """Send a frame to an agent's session, or keep it for the session's resume, or pass it
        to the node that holds the session."""
        session = self.hub.sessions.holding(agent_id)
        if session is None:
            self.hub.spawn(self.hub.nodes.send(agent_id, frame))
            return
        if session.closed:
            return
        if session.attached:
            session.send(frame)
        else:
            self._missed.setdefault(agent_id, []).append(frame)

    async def _resend_assignments(self, session: Session) -> None:
        for task_id in list(self._held.get(session.agent_id, ())):
            task = await self.engine.get_task(task_id)
            if task is not None and task.state == machine.ASSIGNED:
                self._send_assignment(session, task, self._leases.get(task_id, time.time_ns()))

    # Submitting ---------------------------------------------------------------------------

    async def submit(
        self, principal: Principal, request: task_pb2.Task
    ) -> tuple[task_pb2.Task, bool]:
        authz.check_scope(principal, "task:submit")
        self.hub.rate.check(principal, "submit", time.monotonic())
        machine.check_submission(request, self.hub.limits, self.cfg.max_attempts)
        now = time.time_ns()
        if request.HasField("deadline") and request.deadline.ToNanoseconds() <= now:
            raise DeadlineExceeded("task.deadline has already passed")
        task_id = request.id or f"task-{secrets.token_hex(8)}"
        key = f"{principal.id}:{request.idempotency_key}" if request.idempotency_key else ""
        if key:
            holder = await self.engine.claim_idempotency_key(key, task_id)
            if holder != task_id:
                existing = await self.engine.get_task(holder)
                if existing is not None:
                    return existing, True
        elif request.id and await self.engine.get_task(request.id) is not None:
            raise FailedPrecondition(f"task {request.id} exists; use an idempotency_key to retry")
        if request.target_agent_id and await self.engine.get_agent(request.target_agent_id) is None:
            if key:  # a refused submit leaves its key free for the retry
                await self.engine.release_idempotency_key(key, task_id)
            raise NotFound(f"task.target_agent_id: no agent {request.target_agent_id!r}")
        task = task_pb2.Task()
        task.CopyFrom(request)
        hub_managed = ("assigned_agent_id", "status_message", "input_prompt", "artifacts")
        for name in (*hub_managed, "result", "error", "completed_at"):
            task.ClearField(name)  # type: ignore[arg-type]
        task.id = task_id
        task.state = machine.SUBMITTED
        task.attempt = 0
        task.submitter = principal.id
        task.max_attempts = task.max_attempts or self.cfg.default_max_attempts
        set_time(task.created_at, now)
        set_time(task.updated_at, now)
        await self.engine.put_task(task)
        await self._emit(task, EVENT.TASK_EVENT_TYPE_STATE_CHANGED)
        if task.HasField("deadline"):
            await self.engine.set_deadline(task.id, task.deadline.ToNanoseconds())
        await self._enqueue(task, now)
        return task, False

    async def handoff(
        self,
        principal: Principal,
        parent_id: str,
        child: task_pb2.Task,
        summary: str,
        decisions: list[str],
    ) -> task_pb2.Task:
        parent = await self._task(parent_id, "parent_task_id")
        authz.check_task_party(principal, parent.submitter, parent.assigned_agent_id, parent.id)
        kind = agent_pb2.AGENT_KIND_UNSPECIFIED
        if parent.assigned_agent_id:
            agent = await self.engine.get_agent(parent.assigned_agent_id)
            kind = agent.card.kind if agent is not None else kind
        request = task_pb2.Task()
        request.CopyFrom(child)
        package = machine.handoff_context(parent, kind, summary, decisions)
        package.MergeFrom(child.context)
        request.context.CopyFrom(package)
        request.parent_task_id = parent.id
        if not request.HasField("input"):
            request.input.CopyFrom(parent.input)
        task, _ = await self.submit(principal, request)
        audit.record("task.handoff", principal, task=parent.id, child=task.id)
        return task

    # Reading ------------------------------------------------------------------------------

    async def _task(self, task_id: str, field: str = "task_id") -> task_pb2.Task:
        check_id(task_id, field, self.hub.limits, required=True)
        task = await self.engine.get_task(task_id)
        if task is None:
            raise NotFound(f"no task {task_id!r}")
        return task

    async def get(self, principal: Principal, task_id: str) -> task_pb2.Task:
        authz.check_scope(principal, "task:read")
        return await self._task(task_id)

    async def list(
        self,
        principal: Principal,
        states: list[int],
        agent_id: str,
        capability: str,
        limit: int,
    ) -> list[task_pb2.Task]:
        authz.check_scope(principal, "task:read")
        for i, state in enumerate(states):
            machine.check_state(state, f"states[{i}]")
        wanted = set(states)
        found = [
            t
            for t in await self.engine.list_tasks()
            if (not wanted or t.state in wanted)
            and (not agent_id or t.assigned_agent_id == agent_id)
            and (not capability or capability in t.required_capabilities)
        ]
        found.sort(key=lambda t: (t.created_at.seconds, t.created_at.nanos, t.id))
        return found[-limit:] if limit else found

    async def watch(
        self, principal: Principal, task_id: str, after: int
    ) -> AsyncIterator[task_pb2.TaskEvent]:
        """The task as it is now, then its events after `after` (when given), then live ones;
        the stream ends after the event that makes the task final."""
        authz.check_scope(principal, "task:read")
        task = await self._task(task_id)
        watch = _Watch(self.hub.limits.session_queue)
        self._watchers.setdefault(task_id, set()).add(watch)
        try:
            stored = await self.engine.task_events(task_id, 0)
            last = stored[-1].number if stored else 0
            # A copy: the stored task changes while this generator is suspended.
            snapshot = task_pb2.TaskEvent(
                number=last, type=EVENT.TASK_EVENT_TYPE_SNAPSHOT, task=task
            )
            snapshot.time.GetCurrentTime()
            final = machine.is_terminal(snapshot.task)
            yield snapshot
            if final and not after:
                return
            seen = after or last
            for event in stored:
                if event.number > seen:
                    seen = event.number
                    yield event
                    if self._final(event):
                        return
            if final:
                return
            while True:
                if watch.overflowed:
                    raise ResourceExhausted(
                        "the watcher fell behind the task's events (limits.session_queue); "
                        "watch again with after_event"
                    )
                event = await watch.queue.get()
                if event.number <= seen:
                    continue
                seen = event.number
                yield event
                if self._final(event):
                    return
        finally:
            watchers = self._watchers.get(task_id)
            if watchers is not None:
                watchers.discard(watch)
                if not watchers:
                    del self._watchers[task_id]

    @staticmethod
    def _final(event: task_pb2.TaskEvent) -> bool:
        return event.type == EVENT.TASK_EVENT_TYPE_STATE_CHANGED and machine.is_terminal(event.task)

    # Changing -----------------------------------------------------------------------------

    async def cancel(self, principal: Principal, task_id: str, reason: str) -> task_pb2.Task:
        task = await self._task(task_id)
        authz.check_task_owner(principal, task.submitter, task.id)
        if machine.is_terminal(task):
            raise FailedPrecondition(f"task {task.id} is already {machine.state_name(task.state)}")
        audit.record("task.canceled", principal, task=task.id, reason=reason)
        await self._finish(task, machine.CANCELED, reason or "canceled", cancel_agent=True)
        return task

    async def provide_input(
        self, principal: Principal, task_id: str, payload: task_pb2.Payload
    ) -> task_pb2.Task:
        task = await self._task(task_id)
        authz.check_task_owner(principal, task.submitter, task.id)
        if task.state != machine.INPUT_REQUIRED:
            raise FailedPrecondition(
                f"task {task.id} is {machine.state_name(task.state)}, not INPUT_REQUIRED"
            )
        if payload.ByteSize() > self.hub.limits.max_payload_bytes:
            raise ResourceExhausted(
                f"input is {payload.ByteSize()} bytes, over the limit of "
                f"{self.hub.limits.max_payload_bytes} (limits.max_payload_bytes)"
            )
        task.state = machine.WORKING
        task.input_prompt = ""
        await self._save(task)
        await self._emit(task, EVENT.TASK_EVENT_TYPE_STATE_CHANGED)
        self._tell(
            task.assigned_agent_id,
            ss.ConnectResponse(
                task_input=ss.TaskInput(task_id=task.id, attempt=task.attempt, input=payload)
            ),
        )
        return task

    async def update(self, session: Session, update: ss.TaskUpdate) -> None:
        """An agent's report on a task it holds."""
        kind = update.WhichOneof("update")
        if kind is None:
            raise InvalidArgument(
                "task_update: say accept, progress, artifact, input_needed, "
                "result, reject or failure"
            )
        task = await self._task(update.task_id, "task_update.task_id")
        target = machine.check_update(task, session.agent_id, update.attempt, kind)
        if kind == "result":
            task.result.CopyFrom(update.result)
            await self._finish(task, machine.COMPLETED, "completed")
        elif kind == "failure":
            task.error.CopyFrom(update.failure)
            await self._finish(task, machine.FAILED, update.failure.message or "failed")
        elif kind == "reject":
            self._rejected.setdefault(task.id, set()).add(session.agent_id)
            await self._retry(
                task,
                f"rejected by {session.agent_id}: {update.reject.reason}",
                cancel=False,
                rejected=True,
            )
        elif kind == "artifact":
            self._add_artifact(task, update.artifact)
            await self._save(task)
            announced = task_pb2.Artifact()
            announced.CopyFrom(update.artifact)
            announced.ClearField("data")  # events stay small; GetTask has the data
            await self._emit(task, EVENT.TASK_EVENT_TYPE_ARTIFACT, artifact=announced)
        elif kind == "progress":
            changed = task.state != target
            task.state = machine.WORKING
            task.status_message = update.progress.message
            await self._save(task)
            if changed:
                await self._emit(task, EVENT.TASK_EVENT_TYPE_STATE_CHANGED)
            await self._emit(
                task,
                EVENT.TASK_EVENT_TYPE_PROGRESS,
                message=update.progress.message,
                percent=update.progress.percent,
            )
        else:  # accept, input_needed
            if task.state == target:
                return
            task.state = target  # type: ignore[assignment]
            if kind == "input_needed":
                task.input_prompt = update.input_needed.prompt
            await self._save(task)
            await self._emit(task, EVENT.TASK_EVENT_TYPE_STATE_CHANGED)

    @staticmethod
    def _add_artifact(task: task_pb2.Task, chunk: task_pb2.Artifact) -> None:
        """Chunks sharing an id are joined in order into one artifact."""
        if chunk.id:
            for artifact in task.artifacts:
                if artifact.id == chunk.id:
                    artifact.data += chunk.data
                    artifact.chunk_index = chunk.chunk_index
                    artifact.last_chunk = chunk.last_chunk
                    if chunk.sha256:
                        artifact.sha256 = chunk.sha256
                    return
        task.artifacts.append(chunk)

    # Dispatch -----------------------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.dispatch()
            except Exception:
                log.exception("dispatch failed")

    async def dispatch(self) -> None:
        """Offer queued tasks, in priority order, to the agents that can take them. The queue is
        read a page at a time and only while some agent has room: a long queue costs nothing
        when every agent is busy."""
        table = self.table
        skipped = 0  # tasks left in the queue ahead of the next page (no agent for them now)
        while table.has_available:
            page = await self.engine.pending_tasks(skipped, DISPATCH_PAGE)
            if not page:
                return
            for task_id in page:
                if not table.has_available:
                    return
                task = await self.engine.get_task(task_id)
                if task is None or task.state != machine.SUBMITTED:
                    await self.engine.dequeue_task(task_id)
                    continue
                needs = Needs(
                    frozenset(task.required_capabilities),
                    tuple(task.preferred_kinds),
                    task.target_agent_id,
                    self._rejected.get(task.id, ()),
                )
                started = time.perf_counter()
                agent_id = table.route(needs)
                self.routing.observe(time.perf_counter() - started)
                if agent_id is None:
                    skipped += 1
                else:
                    await self._assign(task, agent_id)

    async def _assign(self, task: task_pb2.Task, agent_id: str) -> None:
        session = self.hub.sessions.holding(agent_id)
        if session is None or session.closed:
            self.table.remove(agent_id)
            return
        if not await self.engine.dequeue_task(task.id):
            return  # taken meanwhile
        now = time.time_ns()
        task.state = machine.ASSIGNED
        task.assigned_agent_id = agent_id
        task.attempt += 1
        task.status_message = ""
        lease = now + int(self.cfg.ack_deadline * 1e9)
        self._leases[task.id] = lease
        await self._hold(agent_id, task.id, now)
        await self._save(task, now)
        await self._emit(task, EVENT.TASK_EVENT_TYPE_STATE_CHANGED)
        self._send_assignment(session, task, lease)

    def _send_assignment(self, session: Session, task: task_pb2.Task, lease_ns: int) -> None:
        frame = ss.ConnectResponse(
            task_assignment=ss.TaskAssignment(
                task=task, attempt=task.attempt, ack_deadline=timestamp(lease_ns)
            )
        )
        session.send(frame)

    async def _hold(self, agent_id: str, task_id: str, now: int) -> None:
        held = self._held.setdefault(agent_id, set())
        held.add(task_id)
        await self._set_load(agent_id, len(held), now)

    async def _release(self, task: task_pb2.Task, *, cancel_agent: bool, reason: str) -> None:
        """The task's agent no longer holds it (and is told so when `cancel_agent`)."""
        agent_id = task.assigned_agent_id
        if not agent_id:
            return
        dropped = await self._drop_hold(agent_id, task.id)
        if not dropped and self.hub.sessions.holding(agent_id) is not None:
            return  # an agent here that no longer holds the task: nothing to tell it
        if cancel_agent:  # here, or on the node that holds the agent's session
            cancel = ss.TaskCancel(task_id=task.id, attempt=task.attempt, reason=reason)
            self._tell(agent_id, ss.ConnectResponse(task_cancel=cancel))

    async def _drop_hold(self, agent_id: str, task_id: str) -> bool:
        """End an agent's hold on a task here, freeing its slot; False if it held none."""
        held = self._held.get(agent_id)
        if held is None or task_id not in held:
            return False
        held.discard(task_id)
        await self._set_load(agent_id, len(held), time.time_ns())
        self.wake()
        return True

    async def _set_load(self, agent_id: str, active: int, now: int) -> None:
        self.table.update(agent_id, active=active, now_ns=now)
        agent = await self.engine.get_agent(agent_id)
        if agent is not None:
            agent.active_tasks = active
            if active == 0:
                set_time(agent.idle_since, now)
            await self.engine.put_agent(agent)

    async def _retry(
        self, task: task_pb2.Task, reason: str, *, cancel: bool, rejected: bool = False
    ) -> None:
        """Back to the queue for another agent; when no attempt is left, REJECTED (after a
        reject) or FAILED, onto the dead-letter channel."""
        await self._release(task, cancel_agent=cancel, reason=reason)
        if task.attempt >= task.max_attempts:
            state = machine.REJECTED if rejected else machine.FAILED
            task.error.code = "RESOURCE_EXHAUSTED" if state == machine.FAILED else "ABORTED"
            task.error.message = f"no attempt left after {task.attempt}: {reason}"
            await self._finish(task, state, task.error.message, dead_letter=True)
            return
        log.info("task %s goes back to the queue: %s", task.id, reason)
        task.state = machine.SUBMITTED
        task.assigned_agent_id = ""
        task.status_message = reason
        await self._save(task)
        await self._emit(task, EVENT.TASK_EVENT_TYPE_STATE_CHANGED)
        await self._enqueue(task, task.created_at.ToNanoseconds())

    async def _enqueue(self, task: task_pb2.Task, created_ns: int) -> None:
        await self.engine.enqueue_task(task.id, task.priority, created_ns)
        self.wake()
        await self.hub.nodes.announce_work()

    async def _finish(
        self,
        task: task_pb2.Task,
        state: int,
        message: str,
        *,
        cancel_agent: bool = False,
        dead_letter: bool = False,
    ) -> None:
        await self._release(task, cancel_agent=cancel_agent, reason=message)
        await self.engine.dequeue_task(task.id)
        now = time.time_ns()
        task.state = state  # type: ignore[assignment]
        task.status_message = message
        set_time(task.completed_at, now)
        self._rejected.pop(task.id, None)
        self._finished.append((now, task.id))
        await self._save(task, now)
        await self._emit(task, EVENT.TASK_EVENT_TYPE_STATE_CHANGED)
        if dead_letter:
            env = envelope_pb2.Envelope(
                channel=DLQ_TASKS,
                content_type=wire.PROTOBUF,
                headers={"type": "agentplex.v1.Task", "task": task.id, "reason": message},
                payload=machine.event_view(task).SerializeToString(),  # GetTask has the rest
            )
            await self.hub.publish_system([env])

    async def _save(self, task: task_pb2.Task, now: int | None = None) -> None:
        """Store the task; its accept deadline lives exactly as long as it is ASSIGNED."""
        if task.state != machine.ASSIGNED:
            self._leases.pop(task.id, None)
        set_time(task.updated_at, now or time.time_ns())
        await self.engine.put_task(task)

    async def _emit(self, task: task_pb2.Task, kind: int, **fields: Any) -> None:
        """Keep the event for the task's watchers and publish it on `_sys.tasks`. Four or more
        go out per task, so the envelope is assembled from encoded parts around the event."""
        event = task_pb2.TaskEvent(type=kind, **fields)  # type: ignore[arg-type]
        machine.event_view(task, event.task)
        set_time(event.time, time.time_ns())
        await self.engine.append_task_event(event, self.cfg.max_events)
        env = envelope_pb2.Envelope.FromString(
            _EVENT_ENVELOPE
            + wire.map_entry(6, "task", task.id)
            + _STATE_HEADERS[task.state]
            + wire.message(5, event.SerializeToString())
        )
        await self.hub.publish_system([env])

    # Timers -------------------------------------------------------------------------------

    async def tick(self, now_ns: int) -> None:
        """Expired accept deadlines send the task elsewhere; passed task deadlines fail it;
        finished tasks older than `tasks.retention` are forgotten."""
        for task_id, lease in list(self._leases.items()):
            if lease <= now_ns:
                self._leases.pop(task_id, None)
                task = await self.engine.get_task(task_id)
                if (
                    task is not None
                    and task.state == machine.ASSIGNED
                    and task_id in self._held.get(task.assigned_agent_id, ())  # by this node
                ):
                    await self._retry(
                        task,
                        f"agent {task.assigned_agent_id} did not accept within "
                        f"{self.cfg.ack_deadline:g}s (tasks.ack_deadline)",
                        cancel=True,
                    )
        horizon = now_ns - int(self.cfg.retention * 1e9)
        finished = self._finished
        while finished and finished[0][0] < horizon:
            await self.engine.delete_task(finished.popleft()[1])
        for task_id in await self.engine.due_deadlines(now_ns):  # each taken by one node
            task = await self.engine.get_task(task_id)
            if task is not None and not machine.is_terminal(task):
                task.error.code = "DEADLINE_EXCEEDED"
                task.error.message = "the task's deadline passed before it completed"
                await self._finish(task, machine.FAILED, task.error.message, cancel_agent=True)
