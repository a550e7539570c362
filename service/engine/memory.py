"""The embedded engine: everything in this process, nothing to install or run."""

from __future__ import annotations

import bisect
import heapq
import itertools
import time
from collections import deque
from collections.abc import Sequence

from agentplex.core.channel_log import Accepted, ChannelLog, Replay, Retention, new_epoch
from agentplex.engine.base import Engine, NodeMessageHandler, Outcome, PublicationHandler
from agentplex.v1 import agent_pb2, envelope_pb2, task_pb2


def _drop(_: object) -> None:
    return None


class MemoryEngine(Engine):
    """Channel logs live as long as the process. One epoch per process: a restart loses history,
    so every channel's epoch changes and old positions are reported unrecoverable."""

    name = "memory"

    def __init__(self, retention: Retention | None = None) -> None:
        self.retention = retention or Retention()
        self._logs: dict[str, ChannelLog] = {}
        self._agents: dict[str, agent_pb2.Agent] = {}
        self._handler: PublicationHandler = _drop
        self.epoch = new_epoch()
        self._tasks: dict[str, task_pb2.Task] = {}
        self._keys: dict[str, str] = {}  # idempotency key -> task id
        self._key_of: dict[str, str] = {}  # task id -> its idempotency key
        self._events: dict[str, deque[task_pb2.TaskEvent]] = {}
        self._event_numbers: dict[str, int] = {}
        self._queue: list[tuple[int, int, int, str]] = []
        self._queued: dict[str, tuple[int, int, int, str]] = {}
        self._order = itertools.count()
        self._deadlines: list[tuple[int, str]] = []  # heap of (deadline ns, task id)
        self._deadline_of: dict[str, int] = {}  # the live ones: a forgotten task's is skipped
        self._node = ""
        self._on_node_message: NodeMessageHandler = _drop
        self._nodes: dict[str, int] = {}  # node -> lease expiry (ns)

    async def start(
        self,
        on_publications: PublicationHandler,
        *,
        node: str = "",
        on_node_message: NodeMessageHandler | None = None,
    ) -> None:
        self._handler = on_publications
        self._node = node
        self._on_node_message = on_node_message or _drop

    async def close(self) -> None:
        self._handler = self._on_node_message = _drop

    def _log(self, channel: str) -> ChannelLog:
        log = self._logs.get(channel)
        if log is None:
            log = self._logs[channel] = ChannelLog(channel, self.retention, self.epoch)
        return log

    async def publish(
        self, envelopes: Sequence[envelope_pb2.Envelope], now_ns: int
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        accepted: list[Accepted] = []
        touched: dict[str, ChannelLog] = {}
        make = Outcome._make
        for env in envelopes:
            channel = env.channel
            log = touched.get(channel)
            if log is None:
                log = touched[channel] = self._log(channel)
                log.trim(now_ns)
            dup = log.duplicate_of(env.id, now_ns)
            if dup is not None:
                outcomes.append(make((dup[0], log.epoch, dup[1], True)))
                continue
            entry = log.append(env, now_ns)
            accepted.append(entry)
            outcomes.append(make((entry.seq, log.epoch, entry.sha256, False)))
        if accepted:
            self._handler(accepted)
        return outcomes

    async def history(self, channel: str, seq: int | None, epoch: str | None, limit: int) -> Replay:
        log = self._logs.get(channel)
        if log is None:  # never published: answer without creating state for the name
            known = seq is None or (seq == 0 and epoch in (self.epoch, None, ""))
            return Replay([], 0, self.epoch, known)
        log.trim(time.time_ns())
        return log.since(seq, epoch, limit)

    async def put_agent(self, agent: agent_pb2.Agent) -> None:
        self._agents[agent.card.id] = agent

    async def get_agent(self, agent_id: str) -> agent_pb2.Agent | None:
        return self._agents.get(agent_id)

    async def delete_agent(self, agent_id: str) -> agent_pb2.Agent | None:
        return self._agents.pop(agent_id, None)

    async def list_agents(self) -> list[agent_pb2.Agent]:
        return list(self._agents.values())

    async def put_task(self, task: task_pb2.Task) -> None:
        self._tasks[task.id] = task

    async def get_task(self, task_id: str) -> task_pb2.Task | None:
        return self._tasks.get(task_id)

    async def list_tasks(self) -> list[task_pb2.Task]:
        return list(self._tasks.values())

    async def delete_task(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)
        self._deadline_of.pop(task_id, None)
        self._events.pop(task_id, None)
        self._event_numbers.pop(task_id, None)
        await self.dequeue_task(task_id)
        key = self._key_of.pop(task_id, None)
        if key is not None and self._keys.get(key) == task_id:
            del self._keys[key]

    async def claim_idempotency_key(self, key: str, task_id: str) -> str:
        holder = self._keys.setdefault(key, task_id)
        if holder == task_id:
            self._key_of[task_id] = key
        return holder

    async def release_idempotency_key(self, key: str, task_id: str) -> None:
        if self._keys.get(key) == task_id:
            del self._keys[key]
            self._key_of.pop(task_id, None)

    async def append_task_event(self, event: task_pb2.TaskEvent, keep: int) -> int:
        task_id = event.task.id
        number = self._event_numbers.get(task_id, 0) + 1
        self._event_numbers[task_id] = number
        event.number = number
        events = self._events.get(task_id)
        if events is None:
            events = self._events[task_id] = deque(maxlen=keep)
        events.append(event)
        return number

    async def task_events(self, task_id: str, after: int) -> list[task_pb2.TaskEvent]:
        return [e for e in self._events.get(task_id, ()) if e.number > after]

    async def enqueue_task(self, task_id: str, priority: int, created_ns: int) -> None:
        if task_id in self._queued:
            return
        entry = (-priority, created_ns, next(self._order), task_id)
        self._queued[task_id] = entry
        bisect.insort(self._queue, entry)

    async def dequeue_task(self, task_id: str) -> bool:
        entry = self._queued.pop(task_id, None)
        if entry is None:
            return False
        del self._queue[bisect.bisect_left(self._queue, entry)]
        return True

    async def set_deadline(self, task_id: str, deadline_ns: int) -> None:
        self._deadline_of[task_id] = deadline_ns
        heapq.heappush(self._deadlines, (deadline_ns, task_id))

    async def due_deadlines(self, now_ns: int) -> list[str]:
        due = []
        while self._deadlines and self._deadlines[0][0] <= now_ns:
            deadline, task_id = heapq.heappop(self._deadlines)
            if self._deadline_of.get(task_id) == deadline:
                del self._deadline_of[task_id]
                due.append(task_id)
        return due

    async def pending_tasks(self, start: int = 0, count: int = 0) -> list[str]:
        stop = start + count if count else None
        return [entry[3] for entry in self._queue[start:stop]]

    async def beat(self, node: str, expires_ns: int) -> bool:
        held = node in self._nodes
        self._nodes[node] = expires_ns
        return held

    async def expired_nodes(self, now_ns: int) -> list[str]:
        return [node for node, expiry in self._nodes.items() if expiry <= now_ns]

    async def nodes(self) -> dict[str, int]:
        return dict(self._nodes)

    async def forget_node(self, node: str) -> bool:
        return self._nodes.pop(node, None) is not None

    async def send_to_node(self, node: str, payload: bytes) -> None:
        if node == self._node:
            self._on_node_message(payload)

    async def broadcast(self, payload: bytes) -> None:
        self._on_node_message(payload)
