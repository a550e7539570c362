"""The hub: channels (publish, history, fan-out to subscribers) and the parts that hang off it:
the registry (`hub.agents`), sessions (`hub.sessions`) and tasks (`hub.tasks`). Every operation
a transport can ask for is checked and authorized once, in these classes."""

from __future__ import annotations

import hashlib
import itertools
import logging
import secrets
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agentplex import audit
from agentplex.background import Background
from agentplex.config import Settings
from agentplex.core import authz
from agentplex.core.channel_log import Accepted, intact
from agentplex.core.principal import Principal
from agentplex.core.ratelimit import RateLimiter
from agentplex.core.subscriptions import SubscriptionIndex
from agentplex.core.validation import (
    check_batch_size,
    check_channel,
    check_envelope,
    inbox_owner,
    is_inbox,
)
from agentplex.engine import Engine, create_engine
from agentplex.engine.base import Outcome
from agentplex.errors import HubError, NotFound
from agentplex.security.auth import Authenticator
from agentplex.shutdown import Shutdown
from agentplex.v1 import envelope_pb2

log = logging.getLogger("agentplex.hub")


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
        from agentplex.hub.agents import Agents  # these need the Hub type
        from agentplex.hub.nodes import Nodes
        from agentplex.hub.sessions import SessionManager
        from agentplex.hub.tasks import TaskManager

        self.settings = settings
        self.limits = settings.limits
        self.engine = engine or create_engine(settings)
        self.node = node_id or settings.server.node_id or f"node-{secrets.token_hex(3)}"
        self.index: SubscriptionIndex[Subscriber] = SubscriptionIndex()
        self.metrics = Metrics()
        self.auth = Authenticator(settings.auth)
        self.rate = RateLimiter(settings.rate_limits)
        self.agents = Agents(self)
        self.nodes = Nodes(self)
        self.sessions = SessionManager(self)
        self.tasks = TaskManager(self)
        self._id_prefix = secrets.token_hex(5)
        self._ids = itertools.count(1)
        self._background = Background(log, "hub")

    # Lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.engine.start(
            self._on_publications, node=self.node, on_node_message=self.nodes.received
        )
        await self.nodes.start()
        self.sessions.start()
        await self.tasks.start()

    async def stop(self, shutdown: Shutdown | None = None) -> None:
        """Stop within `server.shutdown_timeout` (or the node's `shutdown`): dispatch ends here,
        this node's agents leave and the tasks they held go back to the queue at once (other
        nodes are woken for them), then the sessions end and the engine is flushed and closed.
        Should Redis be unreachable meanwhile, the node's lease runs out and another node
        requeues instead."""
        shutdown = shutdown or Shutdown(self.settings.server.shutdown_timeout, log)
        await shutdown.stage("stopping task dispatch", self.tasks.stop())
        await shutdown.stage("stopping session timers", self.sessions.stop_timers())
        await shutdown.stage("requeueing this node's tasks", self.nodes.stop())
        await shutdown.stage("ending sessions", self.sessions.stop())
        await shutdown.stage("cancelling background work", self._background.cancel())
        await shutdown.stage("closing the engine", self.engine.close())

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run background work whose failure is logged, never lost silently."""
        self._background.spawn(coro)

    # Fan-out --------------------------------------------------------------------------------

    def _on_publications(self, entries: Sequence[Accepted]) -> None:
        """Hand each entry to its channel's subscribers; the subscribers of a run of entries on
        one channel (a batch, usually) are looked up once."""
        match = self.index.match
        delivered = 0
        channel = None
        subscribers: tuple[Subscriber, ...] = ()
        for entry in entries:
            if entry.channel != channel:
                channel = entry.channel
                subscribers = match(channel)
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
        envelopes = list(envelopes)  # one wrapper per element of a repeated field, made once
        limits = self.limits
        check_batch_size(len(envelopes), limits)
        if self.rate.enabled:  # the publish path reads no clock when limits are off
            self.rate.check(principal, "publish", time.monotonic(), len(envelopes))
        single = len(envelopes) == 1
        channels: set[str] = set()
        for i, env in enumerate(envelopes):
            channel = env.channel
            known = channel in channels
            check_envelope(env, limits, None if single else i, known)
            if not known:
                authz.check_publish(principal, channel)
                channels.add(channel)
        for channel in channels:
            if is_inbox(channel) and await self.engine.get_agent(inbox_owner(channel)) is None:
                raise NotFound(
                    f"no agent {inbox_owner(channel)!r} is registered to receive on {channel!r}"
                )
        return await self._accept(envelopes, sender or principal.id)

    async def _accept(
        self, envelopes: Sequence[envelope_pb2.Envelope], sender: str
    ) -> list[Outcome]:
        now = time.time_ns()
        seconds, nanos = divmod(now, 1_000_000_000)
        prefix, ids = self._id_prefix, self._ids
        sha256 = hashlib.sha256
        for env in envelopes:
            if not env.id:
                env.id = f"{prefix}-{next(ids)}"
            env.sender = sender
            created = env.created_at
            if not created.seconds:
                created.seconds = seconds  # two fields set: cheaper than a CopyFrom
                created.nanos = nanos
            env.sha256 = sha256(env.payload).hexdigest()
        outcomes = await self.engine.publish(envelopes, now)
        duplicates = sum(out[3] for out in outcomes)
        self.metrics.published += len(envelopes) - duplicates
        self.metrics.duplicates += duplicates
        return outcomes

    async def read(self, channel: str, seq: int | None, epoch: str | None, limit: int) -> Page:
        """History from the engine with every entry's sha256 checked; a corrupt entry is
        skipped, counted and audited, never delivered as good data."""
        replay = await self.engine.history(channel, seq, epoch, limit)
        good = []
        for entry in replay.entries:
            if intact(entry):
                good.append(entry)
                continue
            self.metrics.integrity_failures += 1
            log.warning("integrity failure: %s seq %d fails its sha256", channel, entry.seq)
            audit.record("integrity.failure", None, channel=channel, seq=entry.seq)
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

    async def publish_system(self, envelopes: list[envelope_pb2.Envelope]) -> list[Outcome]:
        """The hub's own publications (system channels), unchecked and sent by "hub"."""
        return await self._accept(envelopes, "hub")


__all__ = ["Hub", "HubError", "Page", "Subscriber"]
