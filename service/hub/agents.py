"""The agent registry's operations: register, heartbeat, status, leave, list and watch, each
checked and authorized once for every transport; every change is announced on `_sys.agents`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from agentplex import audit
from agentplex.core import authz, registry, wire
from agentplex.core.channel_log import Accepted
from agentplex.core.clock import set_time, timestamp
from agentplex.core.principal import Principal
from agentplex.core.validation import check_card, check_enum, check_id
from agentplex.errors import AlreadyExists, NotFound, ResourceExhausted
from agentplex.v1 import agent_pb2, envelope_pb2, registry_service_pb2

if TYPE_CHECKING:
    from agentplex.hub.hub import Hub
    from agentplex.hub.session import Session


SYS_AGENTS = "_sys.agents"
AGENT_EVENT_TYPE = "agentplex.v1.AgentEvent"
_EVENT_ENVELOPE = wire.event_envelope(SYS_AGENTS, AGENT_EVENT_TYPE)


class Agents:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.engine = hub.engine
        # Agents registered without a session on this node -> last heartbeat (ns).
        self._unary: dict[str, int] = {}

    async def register(
        self,
        principal: Principal,
        card: agent_pb2.AgentCard,
        *,
        transport: agent_pb2.Transport.ValueType,
        session_id: str = "",
    ) -> agent_pb2.Agent:
        """Register (or re-register) an agent. An id held by a live session elsewhere is
        refused; one whose session is gone (OFFLINE) is taken over."""
        check_card(card, self.hub.limits)
        authz.check_register(principal)
        if not card.id and not (principal.anonymous or principal.is_admin):
            named = agent_pb2.AgentCard()
            named.CopyFrom(card)
            named.id = principal.id  # an agent token names its agent
            card = named
        authz.check_agent_id(principal, card.id)
        if card.id:
            existing = await self.engine.get_agent(card.id)
            if existing is not None:
                authz.check_agent_owner(principal, existing.owner, card.id)
                holder = self.hub.sessions.holding(card.id)
                if holder is not None and holder.id != session_id:
                    if holder.attached:
                        raise AlreadyExists(
                            f"agent {card.id!r} is held by a live session; resume that session "
                            "with its token, or wait for it to leave"
                        )
                    holder.replaced()
                    # A restarted agent knows nothing of what its old session held.
                    await self.hub.tasks.agent_gone(card.id, "registered again by a new session")
                elif (
                    holder is None
                    and existing.node != self.hub.node
                    and (existing.status != registry.OFFLINE)
                ):
                    raise AlreadyExists(f"agent {card.id!r} is registered on node {existing.node}")
        now = time.time_ns()
        agent = registry.new_agent(
            card,
            owner=principal.id,
            transport=transport,
            node=self.hub.node,
            now_ns=now,
            default_max_tasks=self.hub.settings.agents.default_max_concurrent_tasks,
        )
        await self.engine.put_agent(agent)
        agent_id = agent.card.id  # the card may have left it to the hub
        if not session_id:
            self._unary[agent_id] = now
        audit.record("agent.registered", principal, agent=agent_id)
        await self._emit(agent_pb2.AGENT_EVENT_TYPE_JOINED, agent, "registered")
        return agent

    async def restore(self, session: Session) -> None:
        """Register a session's agent again after this node's registration was lost (its lease
        lapsed and another node buried it, or Redis lost its data). If another node's session
        took the id meanwhile, this session ends instead."""
        if session.card is None:
            return
        existing = await self.engine.get_agent(session.agent_id)
        if existing is not None and existing.node == self.hub.node:
            return
        if existing is not None:
            session.end(f"agent {session.agent_id!r} registered on node {existing.node} meanwhile")
            return
        agent = registry.new_agent(
            session.card,
            owner=session.principal.id,
            transport=session.transport,
            node=self.hub.node,
            now_ns=time.time_ns(),
            default_max_tasks=self.hub.settings.agents.default_max_concurrent_tasks,
        )
        if not session.attached:
            agent.status = registry.OFFLINE
        agent.active_tasks = await self.hub.tasks.reconcile(agent.card.id)
        await self.engine.put_agent(agent)
        self.hub.tasks.agent_online(agent)
        audit.record("agent.registered", session.principal, agent=agent.card.id, again=True)
        await self._emit(agent_pb2.AGENT_EVENT_TYPE_JOINED, agent, "registered again")

    async def _agent(self, principal: Principal, agent_id: str) -> agent_pb2.Agent:
        check_id(agent_id, "agent_id", self.hub.limits, required=True)
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
        if agent_id in self._unary:
            self._unary[agent_id] = now
            if agent.status == registry.OFFLINE and not status:
                status = registry.ONLINE
        set_time(agent.last_seen, now)
        await self.set_status(agent, status, "heartbeat")
        return agent

    async def set_status(self, agent: agent_pb2.Agent, status: int, reason: str) -> None:
        """Store the agent and announce a status change (if any)."""
        changed = bool(status) and status != agent.status
        if changed:
            agent.status = status  # type: ignore[assignment]
        await self.engine.put_agent(agent)
        if changed:
            self.hub.tasks.agent_status(agent.card.id, status)
            await self._emit(agent_pb2.AGENT_EVENT_TYPE_STATUS_CHANGED, agent, reason)

    async def deregister(
        self, principal: Principal, agent_id: str, reason: str = "deregistered"
    ) -> None:
        await self._agent(principal, agent_id)
        holder = self.hub.sessions.holding(agent_id)
        if holder is not None:
            holder.end(reason)
        await self.remove(agent_id, reason)

    async def remove(self, agent_id: str, reason: str) -> None:
        self._unary.pop(agent_id, None)
        await self.hub.tasks.agent_gone(agent_id, reason)
        agent = await self.engine.delete_agent(agent_id)
        if agent is not None:
            agent.status = registry.OFFLINE
            audit.record("agent.left", None, agent=agent_id, owner=agent.owner, reason=reason)
            await self._emit(agent_pb2.AGENT_EVENT_TYPE_LEFT, agent, reason)

    async def get(self, principal: Principal, agent_id: str) -> agent_pb2.Agent:
        check_id(agent_id, "agent_id", self.hub.limits, required=True)
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

    async def list(
        self, principal: Principal, flt: registry_service_pb2.AgentFilter
    ) -> list[agent_pb2.Agent]:
        self.check_filter(flt)
        agents = await self.engine.list_agents()
        return sorted((a for a in agents if registry.matches(a, flt)), key=lambda a: a.card.id)

    async def watch(
        self,
        principal: Principal,
        flt: registry_service_pb2.AgentFilter,
        include_current: bool,
    ) -> AsyncIterator[agent_pb2.AgentEvent]:
        self.check_filter(flt)
        watcher = _EventQueue(self.hub.limits.session_queue)
        await self.hub.listen(watcher, SYS_AGENTS)
        try:
            if include_current:
                for agent in await self.list(principal, flt):
                    yield agent_pb2.AgentEvent(
                        type=agent_pb2.AGENT_EVENT_TYPE_SNAPSHOT, agent=agent
                    )
            while True:
                entry = await watcher.get()
                event = agent_pb2.AgentEvent.FromString(entry.envelope.payload)
                if registry.matches(event.agent, flt):
                    yield event
        finally:
            await self.hub.unlisten(watcher, SYS_AGENTS)

    async def _emit(self, kind: int, agent: agent_pb2.Agent, reason: str) -> None:
        """Announce an AgentEvent on `_sys.agents`. The event and its envelope are encoded
        around the agent's own encoding: building them as messages would copy the agent."""
        event = b"".join(
            (
                wire.varint(1 << 3) + wire.varint(kind),  # type
                wire.message(2, agent.SerializeToString()),
                wire.message(3, timestamp(time.time_ns()).SerializeToString()),
                wire.message(4, reason.encode()),
            )
        )
        env = envelope_pb2.Envelope.FromString(_EVENT_ENVELOPE + wire.message(5, event))
        await self.hub.publish_system([env])

    # Liveness of agents registered without a session ----------------------------------------

    async def expire_silent(self, now_ns: int) -> None:
        timeout = int(self.hub.settings.session.heartbeat_timeout * 1e9)
        grace = int(self.hub.settings.session.grace_period * 1e9)
        for agent_id, seen in list(self._unary.items()):
            silent = now_ns - seen
            if silent > timeout + grace:
                await self.remove(agent_id, "grace period expired")
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
