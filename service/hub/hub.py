"""The hub: every operation a transport can ask for, checked and authorized once, here."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from agentplex.config import Settings
from agentplex.core import authz, registry, wire
from agentplex.core.channel_log import Accepted
from agentplex.core.principal import Principal
from agentplex.core.subscriptions import SubscriptionIndex
from agentplex.core.validation import (
    check_batch_size,
    check_card,
    check_channel,
    check_enum,
    check_envelope,
    check_id,
    is_inbox,
)
from agentplex.engine import Engine, create_engine
from agentplex.engine.base import Outcome
from agentplex.errors import AlreadyExists, HubError, NotFound, ResourceExhausted
from agentplex.v1 import agent_pb2, envelope_pb2, registry_service_pb2

log = logging.getLogger("agentplex.hub")
audit = logging.getLogger("agentplex.audit")

SYS_AGENTS = "_sys.agents"
AGENT_EVENT_TYPE = "agentplex.v1.AgentEvent"
PROTOBUF = "application/x-protobuf"


class Subscriber(Protocol):
    """Anything the subscription index can hand envelopes to."""

    def deliver(self, entry: Accepted) -> None: ...

    def __hash__(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Page:
    """A verified page of history."""

    entries: list[Accepted]
    top: int
    epoch: str
    recovered: bool


@dataclass(slots=True)
class Metrics:
    published: int = 0
    duplicates: int = 0
    delivered: int = 0
    integrity_failures: int = 0
    slow_consumers: int = 0


class Hub:
    def __init__(
        self, settings: Settings, engine: Engine | None = None, *, node_id: str = ""
    ) -> None:
        from agentplex.hub.sessions import SessionManager  # these need the Hub type
        from agentplex.hub.tasks import TaskManager

        self.settings = settings
        self.limits = settings.limits
        self.engine = engine or create_engine(settings)
        self.node = node_id or settings.server.node_id or f"node-{secrets.token_hex(3)}"
        self.index: SubscriptionIndex[Subscriber] = SubscriptionIndex()
        self.metrics = Metrics()
        self.sessions = SessionManager(self)
        self.tasks = TaskManager(self)
        self._id_prefix = secrets.token_hex(5)
        self._ids = itertools.count(1)
        # Agents registered without a session on this node -> last heartbeat (ns).
        self._unary_agents: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # Lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.engine.start(self._on_publications)
        self.sessions.start()
        self.tasks.start()

    async def stop(self) -> None:
        await self.tasks.stop()
        await self.sessions.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.engine.close()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run background work whose failure is logged, never lost silently."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    # Fan-out --------------------------------------------------------------------------------

    def _on_publications(self, entries: Sequence[Accepted]) -> None:
        match = self.index.match
        delivered = 0
        for entry in entries:
            subscribers = match(entry.channel)
            delivered += len(subscribers)
            for subscriber in subscribers:
                subscriber.deliver(entry)
        self.metrics.delivered += delivered

    async def listen(self, subscriber: Subscriber, channel: str) -> None:
        if self.index.add(subscriber, channel):
            await self.engine.listen(channel)

    async def unlisten(self, subscriber: Subscriber, channel: str) -> None:
        if self.index.remove(subscriber, channel):
            await self.engine.unlisten(channel)

    # Messaging ------------------------------------------------------------------------------

    async def publish(
        self,
        principal: Principal,
        envelopes: Sequence[envelope_pb2.Envelope],
        *,
        sender: str = "",
    ) -> list[Outcome]:
        """Accept a batch whole or refuse it whole, naming the first bad envelope. Checks that
        depend only on the channel run once per distinct channel of the batch."""
        limits = self.limits
        check_batch_size(len(envelopes), limits)
        single = len(envelopes) == 1
        channels: set[str] = set()
        for i, env in enumerate(envelopes):
            channel = env.channel
            known = channel in channels
            check_envelope(env, limits, None if single else i, known)
            if not known:
                authz.check_publish(principal, channel)
                channels.add(channel)
        for inbox in channels:
            if is_inbox(inbox) and await self.engine.get_agent(inbox[len("agent.") :]) is None:
                raise NotFound(
                    f"no agent {inbox[len('agent.') :]!r} is registered to receive on {inbox!r}"
                )
        return await self._accept(envelopes, sender or principal.id)

    async def _accept(
        self, envelopes: Sequence[envelope_pb2.Envelope], sender: str
    ) -> list[Outcome]:
        now = time.time_ns()
        stamp = Timestamp()
        stamp.FromNanoseconds(now)
        prefix, ids = self._id_prefix, self._ids
        sha256 = hashlib.sha256
        for env in envelopes:
            if not env.id:
                env.id = f"{prefix}-{next(ids)}"
            env.sender = sender
            created = env.created_at
            if not created.seconds:
                created.CopyFrom(stamp)
            env.sha256 = sha256(env.payload).hexdigest()
        outcomes = await self.engine.publish(envelopes, now)
        duplicates = sum(out[3] for out in outcomes)
        self.metrics.published += len(envelopes) - duplicates
        self.metrics.duplicates += duplicates
        return outcomes

    @staticmethod
    def results(
        envelopes: Sequence[envelope_pb2.Envelope], outcomes: Sequence[Outcome], *, named: bool
    ) -> list[bytes]:
        """Encoded `PublishResult`s for a published batch; without `named` the id and channel
        are left out (PublishBatchResponse: the client knows them by index)."""
        if not named:
            return wire.unnamed_results(outcomes)
        encode = wire.publish_result
        pairs = zip(envelopes, outcomes, strict=True)
        return [encode(env.id, env.channel, out) for env, out in pairs]

    async def read(self, channel: str, seq: int | None, epoch: str | None, limit: int) -> Page:
        """History from the engine with every entry's sha256 checked; a corrupt entry is
        skipped, counted and audited, never delivered as good data."""
        replay = await self.engine.history(channel, seq, epoch, limit)
        good = []
        sha256 = hashlib.sha256
        for entry in replay.entries:
            if sha256(entry.envelope.payload).hexdigest() == entry.sha256:
                good.append(entry)
                continue
            self.metrics.integrity_failures += 1
            audit.warning(
                "integrity failure: payload of %s seq %d does not match its sha256; skipped",
                channel,
                entry.seq,
            )
        return Page(good, replay.top, replay.epoch, replay.recovered)

    async def history(
        self,
        principal: Principal,
        channel: str,
        since: envelope_pb2.StreamPosition | None,
        limit: int,
        *,
        agent_id: str = "",
    ) -> Page:
        check_channel(channel)
        authz.check_subscribe(principal, channel, agent_id)
        limit = min(limit or self.limits.history_page, self.limits.history_page)
        if since is None:
            return await self.read(channel, None, None, limit)
        return await self.read(channel, since.seq, since.epoch, limit)

    # Registry -------------------------------------------------------------------------------

    async def register_agent(
        self,
        principal: Principal,
        card: agent_pb2.AgentCard,
        *,
        transport: agent_pb2.Transport.ValueType,
        session_id: str = "",
    ) -> agent_pb2.Agent:
        """Register (or re-register) an agent. An id held by a live session elsewhere is
        refused; one whose session is gone (OFFLINE) is taken over."""
        check_card(card, self.limits)
        authz.check_register(principal)
        if card.id:
            existing = await self.engine.get_agent(card.id)
            if existing is not None:
                authz.check_agent_owner(principal, existing.owner, card.id)
                holder = self.sessions.holding(card.id)
                if holder is not None and holder.id != session_id:
                    if holder.attached:
                        raise AlreadyExists(
                            f"agent {card.id!r} is held by a live session; resume that session "
                            "with its token, or wait for it to leave"
                        )
                    holder.replaced()
                    # A restarted agent knows nothing of what its old session held.
                    await self.tasks.agent_gone(card.id, "registered again by a new session")
                elif (
                    holder is None
                    and existing.node != self.node
                    and (existing.status != registry.OFFLINE)
                ):
                    raise AlreadyExists(f"agent {card.id!r} is registered on node {existing.node}")
        agent = registry.new_agent(
            card,
            owner=principal.id,
            transport=transport,
            node=self.node,
            now_ns=time.time_ns(),
            default_max_tasks=self.settings.agents.default_max_concurrent_tasks,
        )
        await self.engine.put_agent(agent)
        if not session_id:
            self._unary_agents[agent.card.id] = time.time_ns()
        audit.info("agent registered: %s by %s", agent.card.id, principal.id)
        await self._emit(agent_pb2.AGENT_EVENT_TYPE_JOINED, agent, "registered")
        return agent

    async def _agent(self, principal: Principal, agent_id: str) -> agent_pb2.Agent:
        check_id(agent_id, "agent_id", self.limits, required=True)
        agent = await self.engine.get_agent(agent_id)
        if agent is None:
            raise NotFound(f"no agent {agent_id!r} is registered")
        authz.check_agent_owner(principal, agent.owner, agent_id)
        return agent

    async def heartbeat(
        self, principal: Principal, agent_id: str, status: int = 0
    ) -> agent_pb2.Agent:
        registry.check_reported_status(status)
        agent = await self._agent(principal, agent_id)
        now = time.time_ns()
        if agent_id in self._unary_agents:
            self._unary_agents[agent_id] = now
            if agent.status == registry.OFFLINE and not status:
                status = registry.ONLINE
        agent.last_seen.FromNanoseconds(now)
        await self.set_status(agent, status, "heartbeat")
        return agent

    async def set_status(self, agent: agent_pb2.Agent, status: int, reason: str) -> None:
        """Store the agent and announce a status change (if any)."""
        changed = bool(status) and status != agent.status
        if changed:
            agent.status = status  # type: ignore[assignment]
        await self.engine.put_agent(agent)
        if changed:
            self.tasks.agent_status(agent.card.id, status)
            await self._emit(agent_pb2.AGENT_EVENT_TYPE_STATUS_CHANGED, agent, reason)

    async def deregister_agent(
        self, principal: Principal, agent_id: str, reason: str = "deregistered"
    ) -> None:
        await self._agent(principal, agent_id)
        holder = self.sessions.holding(agent_id)
        if holder is not None:
            holder.end(reason)
        await self.remove_agent(agent_id, reason)

    async def remove_agent(self, agent_id: str, reason: str) -> None:
        self._unary_agents.pop(agent_id, None)
        await self.tasks.agent_gone(agent_id, reason)
        agent = await self.engine.delete_agent(agent_id)
        if agent is not None:
            agent.status = registry.OFFLINE
            audit.info("agent left: %s (%s)", agent_id, reason)
            await self._emit(agent_pb2.AGENT_EVENT_TYPE_LEFT, agent, reason)

    async def get_agent(self, principal: Principal, agent_id: str) -> agent_pb2.Agent:
        check_id(agent_id, "agent_id", self.limits, required=True)
        agent = await self.engine.get_agent(agent_id)
        if agent is None:
            raise NotFound(f"no agent {agent_id!r} is registered")
        return agent

    @staticmethod
    def check_filter(flt: registry_service_pb2.AgentFilter) -> None:
        for i, kind in enumerate(flt.kinds):
            check_enum(kind, agent_pb2.AgentKind, f"filter.kinds[{i}]")
        for i, status in enumerate(flt.statuses):
            check_enum(status, agent_pb2.AgentStatus, f"filter.statuses[{i}]")

    async def list_agents(
        self, principal: Principal, flt: registry_service_pb2.AgentFilter
    ) -> list[agent_pb2.Agent]:
        self.check_filter(flt)
        agents = await self.engine.list_agents()
        return sorted((a for a in agents if registry.matches(a, flt)), key=lambda a: a.card.id)

    async def watch_agents(
        self,
        principal: Principal,
        flt: registry_service_pb2.AgentFilter,
        include_current: bool,
    ) -> AsyncIterator[agent_pb2.AgentEvent]:
        self.check_filter(flt)
        watcher = _EventQueue(self.limits.session_queue)
        await self.listen(watcher, SYS_AGENTS)
        try:
            if include_current:
                for agent in await self.list_agents(principal, flt):
                    yield agent_pb2.AgentEvent(
                        type=agent_pb2.AGENT_EVENT_TYPE_SNAPSHOT, agent=agent
                    )
            while True:
                entry = await watcher.get()
                event = agent_pb2.AgentEvent.FromString(entry.envelope.payload)
                if registry.matches(event.agent, flt):
                    yield event
        finally:
            await self.unlisten(watcher, SYS_AGENTS)

    async def publish_system(self, envelopes: list[envelope_pb2.Envelope]) -> list[Outcome]:
        """The hub's own publications (system channels), unchecked and sent by "hub"."""
        return await self._accept(envelopes, "hub")

    async def _emit(self, kind: int, agent: agent_pb2.Agent, reason: str) -> None:
        event = agent_pb2.AgentEvent(type=kind, agent=agent, reason=reason)  # type: ignore[arg-type]
        event.time.FromNanoseconds(time.time_ns())
        env = envelope_pb2.Envelope(
            channel=SYS_AGENTS,
            content_type=PROTOBUF,
            headers={"type": AGENT_EVENT_TYPE},
            payload=event.SerializeToString(),
        )
        await self.publish_system([env])

    # Liveness of agents registered without a session ----------------------------------------

    async def check_unary_agents(self, now_ns: int) -> None:
        timeout = int(self.settings.session.heartbeat_timeout * 1e9)
        grace = int(self.settings.session.grace_period * 1e9)
        for agent_id, seen in list(self._unary_agents.items()):
            silent = now_ns - seen
            if silent > timeout + grace:
                await self.remove_agent(agent_id, "grace period expired")
            elif silent > timeout:
                agent = await self.engine.get_agent(agent_id)
                if agent is not None and agent.status != registry.OFFLINE:
                    await self.set_status(agent, registry.OFFLINE, "heartbeat timeout")


class _EventQueue:
    """A bounded subscriber for internal watchers (WatchAgents)."""

    __slots__ = ("_queue", "overflowed")

    def __init__(self, limit: int) -> None:
        self._queue: asyncio.Queue[Accepted] = asyncio.Queue(limit)
        self.overflowed = False

    def deliver(self, entry: Accepted) -> None:
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.overflowed = True  # a full queue means the reader is not waiting: it will see

    async def get(self) -> Accepted:
        if self.overflowed:
            raise ResourceExhausted(
                "the watcher fell behind the registry's events (limits.session_queue); "
                "watch again with include_current"
            )
        return await self._queue.get()


__all__ = ["Hub", "HubError", "Page", "Subscriber"]
