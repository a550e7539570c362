"""A client's session, whatever the transport: frames in, frames out through an `Outbox`.

A transport (gRPC now, WebSocket and Redis later) hands each client frame to `handle` and writes
what the outbox yields. The session outlives its connection for the grace period: while detached
it only records how far each channel has gone, and a resume replays the gap from history, so no
delivery is buffered in memory for an absent client. Replays run in a task of their own beside
frame handling: a client acks what it reads while a long replay goes on.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from agentplex.core import authz, wire
from agentplex.core.acks import AckTracker, TooManyUnacked
from agentplex.core.channel_log import Accepted
from agentplex.core.globmatch import covers, is_pattern
from agentplex.core.outbox import Outbox, Overflow
from agentplex.core.principal import Principal
from agentplex.core.validation import check_channel, check_subscription, inbox_of
from agentplex.errors import FailedPrecondition, HubError, InvalidArgument, ResourceExhausted
from agentplex.v1 import agent_pb2, envelope_pb2, session_service_pb2 as ss

if TYPE_CHECKING:
    from agentplex.hub.hub import Hub, Page

log = logging.getLogger("agentplex.session")

Frame = ss.ConnectResponse


@dataclass(slots=True)
class _Sent:
    """How far a channel has gone to this session: last seq handed out, and the first.
    `unfinished`: a replay of it was cut short, so history after `seq` may not all be sent
    (a resume replays it even from `seq`)."""

    epoch: str
    seq: int
    first: int
    unfinished: bool = False


@dataclass(slots=True, eq=False)
class _Replay:
    """One channel's replay after (seq, epoch), queued behind the session's earlier ones.
    `page`: its first page when already read (a subscribe reports what it found in its
    receipt); `fatal`: a failure ends the connection (a resume cannot honour its gap)."""

    channel: str
    seq: int
    epoch: str
    page: Page | None = None
    ref: str = ""
    fatal: bool = False


def error_frame(err: HubError, ref: str = "", *, fatal: bool = False) -> Frame:
    return Frame(ref=ref, error=ss.Error(code=err.code.value[0], message=err.message, fatal=fatal))


class Session:
    def __init__(
        self,
        hub: Hub,
        principal: Principal,
        transport: agent_pb2.Transport.ValueType,
        *,
        resumable: bool = True,
    ) -> None:
        self.hub = hub
        self.principal = principal
        self.transport = transport
        self.id = secrets.token_hex(8)
        self.token = secrets.token_urlsafe(24) if resumable else ""
        self.agent_id = ""
        self.card: agent_pb2.AgentCard | None = None  # the registered card, to register again
        self.subscriptions: dict[str, bool] = {}  # name or pattern -> acks required
        self.outbox: Outbox | None = None
        self.closed = False
        settings = hub.settings
        self.acks = AckTracker(int(settings.session.ack_timeout * 1e9), hub.limits.max_unacked)
        self._plans: dict[str, tuple[bool, bool]] = {}  # channel -> (may receive, ack)
        self._sent: dict[str, _Sent] = {}
        self._holding: dict[str, deque[Accepted]] = {}
        # Replays run in one task beside frame handling, so acks flow while they go on.
        self._replays: deque[_Replay] = deque()
        self._replaying: dict[str, _Replay] = {}  # channel -> its current replay
        self._replayer: asyncio.Task[None] | None = None
        self._acked = asyncio.Event()
        now = time.time_ns()
        self.last_frame_ns = now
        self.last_ping_ns = now
        self.detached_ns = 0

    # Connection ---------------------------------------------------------------------------

    @property
    def attached(self) -> bool:
        return self.outbox is not None

    def attach(self, outbox: Outbox) -> None:
        if self.outbox is not None:
            self.outbox.close("replaced by a newer connection of the same session")
            self._stop_replays()
        self.outbox = outbox
        self.last_frame_ns = self.last_ping_ns = time.time_ns()
        self.detached_ns = 0

    def detach(self, outbox: Outbox) -> None:
        """The connection behind `outbox` ended without a goodbye."""
        if self.outbox is not outbox or self.closed:
            return
        self.outbox = None
        self._stop_replays()
        self.detached_ns = time.time_ns()
        if not self.token:
            self.end("stream closed")
            return
        if self.agent_id:
            self.hub.spawn(self._went_offline())

    def end(self, reason: str, code: grpc.StatusCode | None = None) -> None:
        """Close the session for good: stop deliveries now, clean up in the background."""
        if self.closed:
            return
        self.closed = True
        if self.outbox is not None:
            self.outbox.close(reason, code)
        self._stop_replays()
        self.hub.spawn(self.hub.sessions.forget(self, reason))

    def replaced(self) -> None:
        """A new registration took this session's agent id over."""
        self.agent_id = ""
        self.end("agent registered again by a new session")

    def _fail(self, err: Exception, code: grpc.StatusCode) -> None:
        """Cut a slow consumer off, once: what is still being sent to it fails too."""
        if self.closed:
            return
        self.hub.metrics.slow_consumers += 1
        log.warning("session %s cut off: %s", self.id, err)
        self.end(f"consumer too slow: {err}", code)

    # Deliveries ---------------------------------------------------------------------------

    def deliver(self, entry: Accepted) -> None:
        """A live envelope on a channel this session subscribes to (called by fan-out)."""
        held = self._holding.get(entry.channel)
        if held is None:
            self._deliver_now(entry)
        elif len(held) >= (limit := self.hub.limits.session_queue):
            too_many = f"{limit} live envelopes arrived during a replay (limits.session_queue)"
            self._fail(Overflow(too_many), _EXHAUSTED)
        else:
            held.append(entry)

    def _deliver_now(self, entry: Accepted) -> None:
        channel = entry.channel
        sent = self._sent.get(channel)
        if sent is not None and entry.seq <= sent.seq and sent.epoch == entry.epoch:
            return
        plan = self._plans.get(channel) or self._plan(channel)
        if plan[0]:
            self._send(entry, 1, plan[1])

    def _plan(self, channel: str) -> tuple[bool, bool]:
        allowed = authz.can_receive(self.principal, self.agent_id, channel)
        ack = covers((name for name, acked in self.subscriptions.items() if acked), channel)
        plan = self._plans[channel] = (allowed, ack)
        return plan

    def _send(self, entry: Accepted, attempt: int, ack: bool) -> None:
        epoch = entry.epoch
        sent = self._sent.get(entry.channel)
        if sent is None or sent.epoch != epoch:
            self._sent[entry.channel] = _Sent(epoch, entry.seq, entry.seq)
        else:
            sent.seq = entry.seq
        outbox = self.outbox
        if outbox is None:
            return  # detached: a resume replays from history
        try:
            if ack:
                self.acks.track(entry, attempt, time.time_ns())
            outbox.put((entry, attempt))
        except (Overflow, TooManyUnacked) as err:
            self._fail(err, _EXHAUSTED)

    def send(self, frame: Frame | bytes) -> None:
        if self.outbox is None:
            return
        try:
            self.outbox.put(frame)
        except Overflow as err:
            self._fail(err, _EXHAUSTED)

    # Replays ------------------------------------------------------------------------------

    def hold(self, channel: str) -> None:
        """Keep live envelopes of `channel` back until its replay (which releases them)."""
        self._holding.setdefault(channel, deque())

    def replay(self, channel: str, seq: int, epoch: str) -> None:
        """Resend what `channel` holds after (seq, epoch), then what arrives live meanwhile, in
        the background; live envelopes of `channel` are held back from now on."""
        self.hold(channel)
        self._queue(_Replay(channel, seq, epoch, fatal=True))

    def _queue(self, replay: _Replay) -> None:
        """Run `replay` after those queued before it; an earlier one of its channel stops."""
        self._replaying[replay.channel] = replay
        self._replays.append(replay)
        if self._replayer is None or self._replayer.done():
            self._replayer = asyncio.get_running_loop().create_task(self._run_replays())

    async def _run_replays(self) -> None:
        """The queued replays, one after the other, beside frame handling: a client's acks
        must reach the session while a long replay waits for them."""
        while self._replays:
            replay = self._replays.popleft()
            if self._replaying.get(replay.channel) is not replay:
                continue
            try:
                await self._send_replay(replay)
            except HubError as err:
                self.send(error_frame(err, replay.ref, fatal=replay.fatal))
                if replay.fatal and self.outbox is not None:
                    self.outbox.close(err.message, err.code)
            except Exception:
                log.exception("session %s: replay of %r failed", self.id, replay.channel)
                self.end("replay failed", grpc.StatusCode.INTERNAL)
            finally:
                if self._replaying.get(replay.channel) is replay:
                    del self._replaying[replay.channel]
                    self.release(replay.channel)

    async def _send_replay(self, replay: _Replay) -> None:
        """Send the pages after the replay's position, then the live envelopes held meanwhile,
        pacing on the outbox's room and the ack window; stop once it is no longer current."""
        channel, limit = replay.channel, self.hub.limits.history_page
        page = replay.page or await self.hub.read(channel, replay.seq, replay.epoch, limit)
        start = page.entries[0].seq - 1 if page.entries else page.top
        sent = self._sent[channel] = _Sent(page.epoch, start, start + 1, unfinished=True)
        attempts = {key: n for key, n in self.acks.attempts().items() if key[0] == channel}
        ack = (self._plans.get(channel) or self._plan(channel))[1]
        while True:
            for entry in page.entries:
                if not await self._may_send(replay, ack):
                    return
                self._send(entry, attempts.get((channel, entry.seq), 0) + 1, ack)
            if len(page.entries) < limit:
                break
            if self.outbox is not None:
                await self.outbox.wait_for_room()
            page = await self.hub.read(channel, page.entries[-1].seq, page.epoch, limit)
        sent.unfinished = False
        held = self._holding.get(channel)
        while held and await self._may_send(replay, ack):
            self._deliver_now(held.popleft())

    async def _may_send(self, replay: _Replay, ack: bool) -> bool:
        """Whether `replay` is still its channel's, once the ack window has room (see
        `AckTracker.has_room`)."""
        while ack and self.outbox is not None and not self.acks.has_room():
            self._acked.clear()
            await self._acked.wait()
        return self._replaying.get(replay.channel) is replay

    def _stop_replays(self) -> None:
        """A replay belongs to its connection: a resume starts its own from the positions.
        What was held back is released (while detached that only records the positions)."""
        if self._replayer is not None:
            self._replayer.cancel()
            self._replayer = None
        self._replays.clear()
        for channel in list(self._replaying):
            del self._replaying[channel]
            self.release(channel)

    def release(self, channel: str) -> None:
        """Send the live envelopes held back during a replay (if any are)."""
        for entry in self._holding.pop(channel, ()):
            self._deliver_now(entry)

    def redeliver_due(self, now_ns: int) -> None:
        if self.outbox is None or not len(self.acks):
            return
        for entry, attempt in self.acks.due(now_ns):
            try:
                self.outbox.put((entry, attempt))
            except Overflow as err:
                self._fail(err, _EXHAUSTED)
                return

    def positions(self) -> dict[str, _Sent]:
        return self._sent

    # Frames -------------------------------------------------------------------------------

    async def handle(self, frame: ss.ConnectRequest) -> None:
        """Act on one client frame; a refused frame gets an error frame echoing its ref."""
        self.last_frame_ns = time.time_ns()
        kind = frame.WhichOneof("frame")
        try:
            if kind == "publish":
                await self._publish(frame)
            elif kind == "ack":
                for pos in frame.ack.positions:
                    self.acks.ack(pos.channel, pos.position.seq)
                self._acked.set()
                self._receipt(frame.ref)
            elif kind == "heartbeat":
                await self._heartbeat(frame)
            elif kind == "subscribe":
                await self._subscribe(frame)
            elif kind == "unsubscribe":
                await self._unsubscribe(frame)
            elif kind == "goodbye":
                # Gone before the receipt says so: a client that reads it, then looks, finds
                # the agent deregistered (ending the session then finds nothing left to do).
                reason = frame.goodbye.reason or "goodbye"
                await self.hub.sessions.forget(self, reason)
                self._receipt(frame.ref)
                self.end(reason)
            elif kind == "task_update":
                if not self.agent_id:
                    raise FailedPrecondition(
                        "task_update: this session has no agent (say hello with a card)"
                    )
                await self.hub.tasks.update(self, frame.task_update)
                self._receipt(frame.ref)
            elif kind == "submit_task":
                task, _ = await self.hub.tasks.submit(self.principal, frame.submit_task.task)
                self.send(Frame(ref=frame.ref, receipt=ss.Receipt(task=task)))
            elif kind == "batch":
                await self._batch(frame.batch.frames)
            elif kind == "hello":
                raise InvalidArgument("hello: the session has already started")
            else:
                raise InvalidArgument("frame: empty or unknown frame type")
        except HubError as err:
            self.send(error_frame(err, frame.ref))

    async def _batch(self, frames: Sequence[ss.ConnectRequest]) -> None:
        """Each frame of a batch as if it came alone; the batch as a whole is refused only when
        it is over `limits.max_batch` frames."""
        limit = self.hub.limits.max_batch
        if len(frames) > limit:
            raise ResourceExhausted(
                f"batch.frames holds {len(frames)} frames, over the limit of {limit} "
                "(limits.max_batch)"
            )
        for i, inner in enumerate(frames):
            if inner.WhichOneof("frame") == "batch":
                nested = InvalidArgument(f"batch.frames[{i}]: a batch holds no batch")
                self.send(error_frame(nested, inner.ref))
                continue
            await self.handle(inner)
            if self.closed:
                return

    def _receipt(self, ref: str) -> None:
        if ref:
            self.send(Frame(ref=ref, receipt=ss.Receipt()))

    async def _publish(self, frame: ss.ConnectRequest) -> None:
        envelopes = frame.publish.envelopes
        outcomes = await self.hub.publish(self.principal, envelopes, sender=self.agent_id)
        self.send(wire.publish_receipt(frame.ref, wire.publish_results(outcomes, envelopes)))

    async def _heartbeat(self, frame: ss.ConnectRequest) -> None:
        if self.agent_id and frame.heartbeat.status:
            await self.hub.agents.heartbeat(self.principal, self.agent_id, frame.heartbeat.status)
        self._receipt(frame.ref)

    async def _went_offline(self) -> None:
        agent = await self.hub.engine.get_agent(self.agent_id)
        # A resume may have come first: only a session still detached is OFFLINE.
        if agent is not None and self.outbox is None and not self.closed:
            await self.hub.agents.set_status(agent, agent_pb2.AGENT_STATUS_OFFLINE, "disconnected")

    async def subscribe(
        self,
        channels: list[str],
        since: list[envelope_pb2.ChannelPosition],
        ack: bool,
        ref: str = "",
    ) -> list[envelope_pb2.SubscriptionState]:
        """Subscribe to names and patterns, replay after `since` positions, then go live."""
        if not channels and not since:
            raise InvalidArgument("channels is empty: name at least one channel or pattern")
        for i, name in enumerate(channels):
            check_subscription(name, f"channels[{i}]")
            authz.check_subscribe(self.principal, name, self.agent_id)
        fresh = [c for c in dict.fromkeys(channels) if c not in self.subscriptions]
        if len(self.subscriptions) + len(fresh) > self.hub.limits.max_subscriptions:
            raise ResourceExhausted(
                f"a session may hold {self.hub.limits.max_subscriptions} subscriptions "
                "(limits.max_subscriptions)"
            )
        starts: dict[str, envelope_pb2.StreamPosition] = {}
        for i, pos in enumerate(since):
            check_channel(pos.channel, f"since[{i}].channel")
            authz.check_subscribe(self.principal, pos.channel, self.agent_id)
            if not covers([*self.subscriptions, *channels], pos.channel):
                raise InvalidArgument(
                    f"since[{i}].channel: {pos.channel!r} is not among the subscribed channels"
                )
            starts[pos.channel] = pos.position
        # Before anything awaits, so no live envelope overtakes its gap; an earlier replay of
        # the channel stops where it is.
        for channel in starts:
            self._replaying.pop(channel, None)
            self.hold(channel)
        try:
            states, pages = await self._subscribe_states(channels, fresh, starts, ack)
        except BaseException:
            for channel in starts:
                self.release(channel)
            raise
        # The receipt goes first so a client knows its subscriptions before the replay arrives.
        self.send(Frame(ref=ref, receipt=ss.Receipt(subscriptions=list(states.values()))))
        for channel, page in pages:
            start = starts[channel]
            self._queue(_Replay(channel, start.seq, start.epoch, page, ref))
        return list(states.values())

    async def _subscribe_states(
        self,
        channels: list[str],
        fresh: list[str],
        starts: dict[str, envelope_pb2.StreamPosition],
        ack: bool,
    ) -> tuple[dict[str, envelope_pb2.SubscriptionState], list[tuple[str, Page]]]:
        """Read where each channel stands, listen, and read the first page of each replay. A
        channel's position is read before listening: what comes after it then arrives live,
        or is what a resume from it asks for. Read after, it could count an envelope still on
        its way to this node, which a client resuming from there would never get."""
        states: dict[str, envelope_pb2.SubscriptionState] = {}
        for name in channels:
            state = states[name] = envelope_pb2.SubscriptionState(channel=name, recovered=True)
            if not is_pattern(name) and name not in starts:
                top = await self.hub.read(name, None, None, 0)
                state.position.seq, state.position.epoch = top.top, top.epoch
        for name in channels:
            self.subscriptions[name] = self.subscriptions.get(name, False) or ack
            states[name].ack_required = self.subscriptions[name]
        self._plans.clear()
        for name in fresh:
            await self.hub.listen(self, name)
        pages = []
        limit = self.hub.limits.history_page
        for channel, start in starts.items():
            page = await self.hub.read(channel, start.seq, start.epoch, limit)
            state = states.setdefault(
                channel,
                envelope_pb2.SubscriptionState(
                    channel=channel, ack_required=self._plan(channel)[1]
                ),
            )
            state.recovered = page.recovered
            state.position.seq, state.position.epoch = page.top, page.epoch
            pages.append((channel, page))
        return states, pages

    async def _subscribe(self, frame: ss.ConnectRequest) -> None:
        sub = frame.subscribe
        await self.subscribe(list(sub.channels), list(sub.since), sub.ack, frame.ref)

    async def _unsubscribe(self, frame: ss.ConnectRequest) -> None:
        for i, name in enumerate(frame.unsubscribe.channels):
            check_subscription(name, f"channels[{i}]")
        for name in frame.unsubscribe.channels:
            if self.subscriptions.pop(name, None) is not None:
                await self.hub.unlisten(self, name)
        self._plans.clear()
        for channel in list(self._replaying):  # a replay ends with its subscription
            if not covers(self.subscriptions, channel):
                del self._replaying[channel]
                self._holding.pop(channel, None)
        self.acks.keep_only(lambda channel: self._plan(channel)[1])
        self._acked.set()
        self._receipt(frame.ref)

    async def unsubscribe_all(self) -> None:
        for name in list(self.subscriptions):
            await self.hub.unlisten(self, name)
        self.subscriptions.clear()

    async def subscribe_inbox(self, reported: Sequence[envelope_pb2.ChannelPosition]) -> None:
        """Subscribe the agent to its inbox, with acks, from the position its hello reported
        there (a client back after its grace period): what it missed is replayed before any
        live direct message (`subscribe` holds those back until its replay is done)."""
        inbox = inbox_of(self.agent_id)
        await self.subscribe([inbox], [p for p in reported if p.channel == inbox], True)


_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
