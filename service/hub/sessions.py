"""Session bookkeeping: hello and resume, the agent each session holds, and the timers
(heartbeat timeout, ack redelivery, grace expiry) driven by one ticker per hub."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import grpc

from agentplex.background import cancel_and_wait
from agentplex.core.clock import set_time
from agentplex.core.outbox import Outbox
from agentplex.core.principal import Principal
from agentplex.errors import InvalidArgument, ResourceExhausted, Unavailable
from agentplex.hub.session import Frame, Session, error_frame
from agentplex.v1 import agent_pb2, session_service_pb2 as ss

if TYPE_CHECKING:
    from agentplex.hub.hub import Hub

log = logging.getLogger("agentplex.sessions")


class SessionManager:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._sessions: dict[str, Session] = {}
        self._by_token: dict[str, Session] = {}
        self._by_agent: dict[str, Session] = {}
        self._per_principal: dict[str, int] = {}  # live sessions of each principal
        self._ticker: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._sessions)

    def all(self) -> list[Session]:
        return list(self._sessions.values())

    def holding(self, agent_id: str) -> Session | None:
        return self._by_agent.get(agent_id)

    def start(self) -> None:
        self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())

    async def stop_timers(self) -> None:
        """No more heartbeats, redelivery, grace expiry, nor lease renewals (the ticker drives
        them): a stopping node must not renew the lease it is giving up."""
        await cancel_and_wait(self._ticker)

    async def stop(self) -> None:
        await self.stop_timers()
        for session in list(self._sessions.values()):
            session.end("hub shutting down", grpc.StatusCode.UNAVAILABLE)

    # Opening --------------------------------------------------------------------------------

    def open(
        self, principal: Principal, transport: agent_pb2.Transport.ValueType, *, resumable: bool
    ) -> Session:
        session = Session(self.hub, principal, transport, resumable=resumable)
        self._sessions[session.id] = session
        self._per_principal[principal.id] = self._per_principal.get(principal.id, 0) + 1
        if session.token:
            self._by_token[session.token] = session
        return session

    async def hello(
        self,
        frame: ss.ConnectRequest,
        principal: Principal,
        transport: agent_pb2.Transport.ValueType,
        outbox: Outbox,
    ) -> Session:
        """Start or resume a session from its first frame. A refused hello closes the
        connection with an error frame naming the problem."""
        if frame.WhichOneof("frame") != "hello":
            raise InvalidArgument("the first frame of a session must be hello")
        hello = frame.hello
        self.hub.rate.check(principal, "connect", time.monotonic())
        old = self._by_token.get(hello.resume_token) if hello.resume_token else None
        if old is not None and not old.closed and old.principal.id == principal.id:
            await self._resume(old, frame, outbox)
            return old
        most = self.hub.settings.rate_limits.max_sessions
        if self.hub.rate.enabled and self._per_principal.get(principal.id, 0) >= most:
            raise ResourceExhausted(
                f"{principal.id!r} already holds {most} sessions (rate_limits.max_sessions)"
            )
        session = self.open(principal, transport, resumable=True)
        session.attach(outbox)
        try:
            if hello.HasField("card"):
                agent = await self.hub.agents.register(
                    principal, hello.card, transport=transport, session_id=session.id
                )
                session.agent_id, session.card = agent.card.id, agent.card
                self._by_agent[session.agent_id] = session
            session.send(Frame(ref=frame.ref, welcome=self._welcome(session, resumed=False)))
            if session.agent_id:
                await session.subscribe_inbox(hello.positions)
                self.hub.tasks.agent_online(agent)
        except BaseException:
            # The transport reports the refusal on this connection; the session just goes.
            session.outbox = None
            if self._by_agent.get(session.agent_id) is session:
                del self._by_agent[session.agent_id]
            session.agent_id = ""
            session.end("hello refused")
            raise
        return session

    def _welcome(self, session: Session, *, resumed: bool) -> ss.Welcome:
        cfg = self.hub.settings.session
        return ss.Welcome(
            session_id=session.id,
            agent_id=session.agent_id,
            resume_token=session.token,
            resumed=resumed,
            heartbeat_interval_ms=int(cfg.heartbeat_interval * 1000),
            grace_period_ms=int(cfg.grace_period * 1000),
            ack_timeout_ms=int(cfg.ack_timeout * 1000),
            lease_ms=int(self.hub.settings.tasks.ack_deadline * 1000),
            node=self.hub.node,
            batch_limit=self.hub.limits.max_batch,
            max_frame_bytes=self.hub.settings.server.max_message_bytes,
        )

    async def _resume(self, session: Session, frame: ss.ConnectRequest, outbox: Outbox) -> None:
        """Reattach, then resend from history whatever the client has not processed: from its
        reported position on each channel (or from the first envelope it was sent), including
        unacknowledged deliveries."""
        session.attach(outbox)
        reported = {p.channel: p.position for p in frame.hello.positions}
        replays = []
        for channel, sent in list(session.positions().items()):
            start = sent.first - 1
            pos = reported.get(channel)
            if pos is not None and (not pos.epoch or pos.epoch == sent.epoch):
                start = max(start, min(pos.seq, sent.seq))
            lowest = session.acks.lowest_pending(channel)
            if lowest is not None:
                start = min(start, lowest - 1)
            if start < sent.seq or sent.unfinished:
                replays.append((channel, start, sent.epoch))
        welcome = self._welcome(session, resumed=True)
        for name, ack in session.subscriptions.items():
            welcome.subscriptions.add(channel=name, recovered=True, ack_required=ack)
        session.send(Frame(ref=frame.ref, welcome=welcome))
        # Queued before anything awaits, so live envelopes of those channels wait behind their
        # replay; replays run beside the session's frames (acks go on meanwhile).
        for channel, start, epoch in replays:
            session.replay(channel, start, epoch)
        if session.agent_id:
            agent = await self.hub.engine.get_agent(session.agent_id)
            if agent is not None:
                await self.hub.agents.set_status(agent, agent_pb2.AGENT_STATUS_ONLINE, "resumed")
                self.hub.tasks.resumed(session)

    # Closing --------------------------------------------------------------------------------

    async def forget(self, session: Session, reason: str) -> None:
        """Drop a closed session: its subscriptions, token and agent registration."""
        if self._sessions.pop(session.id, None) is not None:
            left = self._per_principal.pop(session.principal.id, 1) - 1
            if left:
                self._per_principal[session.principal.id] = left
        self._by_token.pop(session.token, None)
        await session.unsubscribe_all()
        if session.agent_id and self._by_agent.get(session.agent_id) is session:
            del self._by_agent[session.agent_id]
            await self.hub.agents.remove(session.agent_id, reason)

    # Timers ---------------------------------------------------------------------------------

    async def _tick_forever(self) -> None:
        interval = self.hub.settings.session.tick
        while True:
            await asyncio.sleep(interval)
            try:
                self.tick(time.time_ns())
                await self.hub.nodes.tick(time.time_ns())
                await self.hub.agents.expire_silent(time.time_ns())
                await self.hub.tasks.tick(time.time_ns())
            except Unavailable:
                pass  # the engine has said so; timers resume when it is back
            except Exception:
                log.exception("session ticker failed")

    def tick(self, now_ns: int) -> None:
        cfg = self.hub.settings.session
        timeout = int(cfg.heartbeat_timeout * 1e9)
        interval = int(cfg.heartbeat_interval * 1e9)
        grace = int(cfg.grace_period * 1e9)
        for session in list(self._sessions.values()):
            if session.closed:
                continue
            outbox = session.outbox
            if outbox is None:
                if now_ns - session.detached_ns > grace:
                    session.end("grace period expired")
                continue
            if session.token and now_ns - session.last_frame_ns > timeout:
                outbox.close(
                    f"no frame from the client for {cfg.heartbeat_timeout:g}s "
                    "(session.heartbeat_timeout)",
                    grpc.StatusCode.UNAVAILABLE,
                )
                session.detach(outbox)
                continue
            if now_ns - max(session.last_frame_ns, session.last_ping_ns) > interval:
                session.last_ping_ns = now_ns
                ping = Frame(ping=ss.Ping())
                set_time(ping.ping.time, now_ns)
                session.send(ping)
            session.redeliver_due(now_ns)


__all__ = ["SessionManager", "error_frame"]
