"""A live session over SessionService.Connect: register an agent, publish, subscribe with acks,
and carry on across dropped connections.

    card = AgentCard(id="reviewer-1", kind=AGENT_KIND_CUSTOM, capabilities=["review"])
    async with client.session(card) as session:
        async for message in session.inbox():
            print(message.envelope.payload)

A dropped stream is reopened with the resume token and the last positions seen: within the
hub's grace period the hub resends exactly what was missed; after it, the session registers
again (the hub replays the inbox from the position the hello gives) and resubscribes from
those positions, or from where a subscription began on a channel that had sent nothing yet.
Deliveries already seen are dropped, so an iteration sees no gap and no duplicate; such a
redelivery is acked only when its message was acked here already (the ack was lost), never
while the message still waits to be handled.
A hub node that shuts down says so first (a drain frame): the tasks running here are
cancelled, as the hub hands them to other agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Unpack

import grpc

from agentplex.client.errors import HubError, SessionClosed, status_from_number
from agentplex.client.positions import Positions, requested
from agentplex.client.tasks import (
    TaskContext,
    TaskHandle,
    TaskOptions,
    TaskRejected,
    new_task,
    payload,
)
from agentplex.core.framing import runs
from agentplex.core.globmatch import covers
from agentplex.v1 import (
    agent_pb2,
    envelope_pb2,
    session_service_pb2 as ss,
    session_service_pb2_grpc as ss_grpc,
    task_pb2,
)

TaskHandler = Callable[[TaskContext], Awaitable[bytes | str | task_pb2.Payload | None]]

if TYPE_CHECKING:
    from agentplex.client.client import Client

log = logging.getLogger("agentplex.client")
EOF = grpc.aio.EOF  # type: ignore[attr-defined]

# A batch gathers small frames (what it saves is per message, not per byte); a larger frame
# goes alone, so no batch comes near a hub's message size limit (server.max_message_bytes).
BATCH_BYTES = 64 * 1024

# Refusals that a reconnect would only repeat.
FATAL = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.UNIMPLEMENTED,
}


def _resubscribed(sub: SessionSubscription, answer: asyncio.Future[ss.ConnectResponse]) -> None:
    """A new session's answer to a subscription asked for again: its states take the place
    of the old ones, and what the caller should know is logged: history no longer holds the
    gap (`recovered` false), or the hub refused the subscription."""
    if answer.cancelled() or answer.exception() is not None:
        return  # the session failed or closed: the caller hears of that
    response = answer.result()
    if response.HasField("error"):
        log.warning("subscribing again to %s was refused: %s", sub.channels, response.error.message)
        return
    sub.states = list(response.receipt.subscriptions)
    lost = [state.channel for state in sub.states if not state.recovered]
    if lost:
        log.warning("history no longer holds all that %s missed while away (recovered=false)", lost)


def _key(env: envelope_pb2.Envelope) -> tuple[str, int, str]:
    position = env.position
    return env.channel, position.seq, position.epoch


@dataclass(slots=True)
class Message:
    """A delivery: the envelope, which attempt this is, and a way to acknowledge it."""

    envelope: envelope_pb2.Envelope
    attempt: int
    session: Session

    async def ack(self) -> None:
        await self.session.ack(self.envelope)


@dataclass(eq=False)
class SessionSubscription:
    """Deliveries of some channels and patterns, as an async iterator of `Message`."""

    channels: list[str]
    ack: bool
    auto_ack: bool
    session: Session
    queue: asyncio.Queue[Message | None] = field(default_factory=asyncio.Queue)
    # The hub's receipt: per channel its position and whether the start asked for could be
    # honoured (`recovered`); renewed when a new session subscribes again after a drop.
    states: list[envelope_pb2.SubscriptionState] = field(default_factory=list)

    def wants(self, channel: str) -> bool:
        return covers(self.channels, channel)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            message = await self.queue.get()
            if message is None:
                return
            yield message
            if self.ack and self.auto_ack:
                await message.ack()

    async def unsubscribe(self) -> None:
        await self.session._unsubscribe(self)


class Session:
    def __init__(
        self,
        client: Client,
        card: agent_pb2.AgentCard | None = None,
        *,
        reconnect: bool = True,
        max_backoff: float = 2.0,
    ) -> None:
        self.client = client
        self.card = card
        self.reconnect = reconnect
        self.max_backoff = max_backoff
        self.stub = ss_grpc.SessionServiceStub(client.channel)
        self.welcome = ss.Welcome()
        self.agent_id = ""
        self.positions = Positions()
        self.status = 0
        self.closed = False
        self.connected = asyncio.Event()
        self.closed_event = asyncio.Event()
        self._call: Any = None
        self._refs = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[ss.ConnectResponse]] = {}
        self._inflight: dict[str, ss.ConnectRequest] = {}
        self._subs: list[SessionSubscription] = []
        self._write_lock = asyncio.Lock()
        self._outgoing: list[ss.ConnectRequest] = []  # waiting for the write in flight
        self._early: list[ss.ConnectResponse] = []  # came with the welcome, not acted on yet
        self._runner: asyncio.Task[None] | None = None
        self._heartbeats: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._leaving = False
        self._handler: TaskHandler | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._replies: dict[str, asyncio.Future[envelope_pb2.Envelope]] = {}
        # (channel, seq, epoch) handed to a subscription that acks, not acked yet: a redelivery
        # of one is dropped unacked, or a crash before it is handled would lose it.
        self._unacked: set[tuple[str, int, str]] = set()
        self._running: dict[tuple[str, int], tuple[asyncio.Task[None], TaskContext]] = {}
        self.reconnects = 0

    # Lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Session:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> ss.Welcome:
        await self._open(resume=False)
        self._runner = asyncio.get_running_loop().create_task(self._run())
        return self.welcome

    async def close(self, reason: str = "goodbye") -> None:
        """Leave for good: the hub deregisters the agent and forgets the session."""
        if self.closed:
            return
        self._leaving = True
        if self.connected.is_set():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._request(ss.ConnectRequest(goodbye=ss.Goodbye(reason=reason))), 2.0
                )
        self._shutdown(SessionClosed(reason))

    def drop(self) -> None:
        """Cut the connection without a goodbye (as a crash would); reconnect takes over."""
        if self._call is not None:
            self._call.cancel()

    @property
    def failure(self) -> BaseException | None:
        """Why the session ended (SessionClosed after a goodbye), None while it lives."""
        return self._failure

    def _shutdown(self, failure: BaseException) -> None:
        self.closed = True
        self._failure = failure
        self.closed_event.set()
        self.connected.set()
        for task in (self._runner, self._heartbeats):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        if self._call is not None:
            self._call.cancel()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(failure)
        self._waiting.clear()
        for sub in self._subs:
            sub.queue.put_nowait(None)
        for task, _ in list(self._running.values()):
            task.cancel()

    async def _open(self, *, resume: bool) -> None:
        """Open a stream and say hello; on a fresh (not resumed) session, subscribe again."""
        hello = ss.Hello(positions=self.positions.as_list(), batches=True)
        if self.card is not None:
            hello.card.CopyFrom(self.card)
            if self.agent_id:
                hello.card.id = self.agent_id
        if resume and self.welcome.resume_token:
            hello.resume_token = self.welcome.resume_token
        self._call = self.stub.Connect(metadata=self.client.metadata)  # type: ignore[call-arg]
        self._outgoing.clear()  # left for the old stream; the tracked ones are sent again below
        try:
            await self._call.write(ss.ConnectRequest(ref="hello", hello=hello))
            first = await self._call.read()
        except grpc.RpcError as err:  # refused before hello: a bad token in the metadata
            raise HubError.from_rpc(err) from None
        if first is EOF:
            raise HubError(grpc.StatusCode.UNAVAILABLE, "the hub closed the session stream")
        rest: list[ss.ConnectResponse] = []
        if first.WhichOneof("frame") == "batch":  # the welcome and what the hub had ready next
            first, *rest = first.batch.frames
        if first.HasField("error"):
            raise HubError(status_from_number(first.error.code), first.error.message)
        self.welcome = first.welcome
        self.agent_id = self.welcome.agent_id
        self.connected.set()
        interval = max(self.welcome.heartbeat_interval_ms / 1000, 0.05)
        if self._heartbeats is not None:
            self._heartbeats.cancel()
        self._heartbeats = asyncio.get_running_loop().create_task(self._beat(interval))
        if self.agent_id and not any(sub.channels == [self._inbox_name()] for sub in self._subs):
            # The hub subscribes an agent to its inbox at once; receive from the first frame.
            self._subs.append(SessionSubscription([self._inbox_name()], True, True, self))
        self._early = rest  # the read loop acts on them first
        for ref, frame in list(self._inflight.items()):
            too_big = self._oversized(frame)  # sent before a welcome gave the limit
            if too_big is None:
                await self._write(frame)
                continue
            del self._inflight[ref]
            future = self._waiting.pop(ref, None)
            if future is not None and not future.done():
                future.set_exception(too_big)
        if resume and not self.welcome.resumed:
            await self._resubscribe()

    async def _resubscribe(self) -> None:
        """A new session: ask again for every subscription, from the positions seen. Not for
        the inbox: the hub subscribed it at hello, from the position the hello gave, and a
        second replay of it would only be dropped here as duplicates."""
        inbox = self._inbox_name()
        positions = [p for p in self.positions.as_list() if p.channel != inbox]
        for sub in self._subs:
            channels = [c for c in sub.channels if c != inbox]
            if not channels:
                continue
            since = [p for p in positions if sub.wants(p.channel)]
            frame = ss.ConnectRequest(
                subscribe=ss.Subscribe(channels=channels, since=since, ack=sub.ack)
            )
            answer = await self._send_tracked(frame)
            answer.add_done_callback(functools.partial(_resubscribed, sub))

    async def _run(self) -> None:
        backoff = 0.05
        while not self.closed:
            try:
                await self._read_loop()
                if self.closed or self._leaving:
                    return
                raise HubError(grpc.StatusCode.UNAVAILABLE, "the hub ended the session stream")
            except (grpc.RpcError, HubError) as err:
                failure = err if isinstance(err, HubError) else HubError.from_rpc(err)
                if self.closed:
                    return
                if not self.reconnect or failure.code in FATAL:
                    self._shutdown(failure)
                    return
                log.info("session stream lost (%s); reconnecting", failure)
            self.connected.clear()
            while not self.closed:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                try:
                    await self._open(resume=True)
                    self.reconnects += 1
                    backoff = 0.05
                    break
                except (grpc.RpcError, HubError) as err:
                    failure = err if isinstance(err, HubError) else HubError.from_rpc(err)
                    # After a hub restart the agent may stay registered on the dead node until
                    # its lease runs out (engine.node_ttl): keep trying, it frees itself.
                    if failure.code in FATAL and failure.code != grpc.StatusCode.ALREADY_EXISTS:
                        self._shutdown(failure)
                        return
                    log.info("reconnect refused (%s); trying again", failure)

    async def _read_loop(self) -> None:
        early, self._early = self._early, []
        for frame in early:
            await self._on_frame(frame)
        while True:
            try:
                frame = await self._call.read()
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self.closed or (task is not None and task.cancelling()):
                    raise
                # The call was cancelled (drop(), or the channel went away): reconnect.
                raise HubError(grpc.StatusCode.UNAVAILABLE, "session stream cancelled") from None
            if frame is EOF:
                return
            if frame.WhichOneof("frame") == "batch":
                for inner in frame.batch.frames:
                    await self._on_frame(inner)
            else:
                await self._on_frame(frame)

    async def _on_frame(self, frame: ss.ConnectResponse) -> None:
        """Act on one frame from the hub (a batch's frames come here one by one)."""
        kind = frame.WhichOneof("frame")
        if kind == "deliveries":
            await self._dispatch(frame.deliveries)
        elif kind == "task_assignment":
            self._start_task(frame.task_assignment)
        elif kind == "task_cancel":
            running = self._running.get((frame.task_cancel.task_id, frame.task_cancel.attempt))
            if running is not None:
                running[0].cancel()
        elif kind == "task_input":
            running = self._running.get((frame.task_input.task_id, frame.task_input.attempt))
            if running is not None:
                running[1]._give_input(frame.task_input.input)
        elif kind == "drain":
            # The node is leaving and gives the tasks held here to other agents: stop them.
            # It ends the stream next, after letting the agent go, and the session then
            # reconnects as after any drop (reconnecting sooner, another node would still
            # find the agent registered on this one).
            log.info("hub node %s is draining: %s", frame.drain.node, frame.drain.reason)
            for task, _ in list(self._running.values()):
                task.cancel()
        elif kind == "receipt":
            # Also the hub's own receipt (no ref) for the inbox it subscribes at hello.
            self.positions.began(frame.receipt.subscriptions)
        elif kind == "ping":
            await self._try_write(ss.ConnectRequest(heartbeat=ss.Heartbeat()))
        elif kind == "error" and frame.error.fatal and frame.ref not in self._waiting:
            raise HubError(status_from_number(frame.error.code), frame.error.message)
        future = self._waiting.pop(frame.ref, None) if frame.ref else None
        if future is not None:
            self._inflight.pop(frame.ref, None)
            if not future.done():
                future.set_result(frame)

    async def _dispatch(self, deliveries: envelope_pb2.Deliveries) -> None:
        acks: list[envelope_pb2.ChannelPosition] = []
        for delivery in deliveries.deliveries:
            env = delivery.envelope
            fresh = self.positions.advance(env.channel, env.position)
            wanted = [sub for sub in self._subs if sub.wants(env.channel)]
            reply = self._replies.get(env.correlation_id) if env.correlation_id else None
            acked = any(sub.ack for sub in wanted)
            if not fresh or (reply is not None and env.channel == self._inbox_name()):
                if reply is not None and fresh and not reply.done():
                    reply.set_result(env)  # the answer to request(): consumed here
                if acked and _key(env) not in self._unacked:
                    acks.append(
                        envelope_pb2.ChannelPosition(channel=env.channel, position=env.position)
                    )
                continue
            if acked:
                self._unacked.add(_key(env))
            for sub in wanted:
                sub.queue.put_nowait(Message(env, delivery.attempt, self))
        if acks:
            await self._try_write(ss.ConnectRequest(ack=ss.Ack(positions=acks)))

    async def _beat(self, interval: float) -> None:
        while not self.closed:
            await asyncio.sleep(interval)
            await self._try_write(ss.ConnectRequest(heartbeat=ss.Heartbeat(status=self.status)))  # type: ignore[arg-type]

    # Frames -------------------------------------------------------------------------------

    async def _write(self, frame: ss.ConnectRequest) -> None:
        """Frames queued while a write is in flight go out together, as batch frames when the
        hub takes them (its welcome gives a `batch_limit`): a gRPC message costs both ends far
        more than its bytes. A failed write loses what it carried: tracked frames are sent
        again after the reconnect, the others are safe to lose (see `_try_write`)."""
        self._outgoing.append(frame)
        async with self._write_lock:
            if not self._outgoing:
                return  # a write ahead of this one carried the frame
            out, self._outgoing = self._outgoing, []
            limit = self.welcome.batch_limit or 1
            for run in runs(out, ss.ConnectRequest.ByteSize, BATCH_BYTES, limit):
                batch = ss.ConnectRequestBatch(frames=run) if len(run) > 1 else None
                await self._call.write(run[0] if batch is None else ss.ConnectRequest(batch=batch))

    async def _try_write(self, frame: ss.ConnectRequest) -> None:
        """Best effort: while the stream is down, or if it dies under the write, the frame is
        dropped (never written ahead of a new stream's hello). Acks, accepts and heartbeats
        are safe to lose (the hub redelivers, offers the task again, and the reconnect says
        hello); tracked frames are sent again."""
        if not self.connected.is_set():
            return
        with contextlib.suppress(Exception):
            await self._write(frame)

    async def _send_tracked(self, frame: ss.ConnectRequest) -> asyncio.Future[ss.ConnectResponse]:
        """Send a frame that expects a receipt; it is sent again after a reconnect."""
        if self._failure is not None:
            raise self._failure
        too_big = self._oversized(frame)
        if too_big is not None:
            raise too_big
        frame.ref = frame.ref or f"r{next(self._refs)}"
        future: asyncio.Future[ss.ConnectResponse] = asyncio.get_running_loop().create_future()
        self._waiting[frame.ref] = future
        self._inflight[frame.ref] = frame
        if self.connected.is_set():
            await self._try_write(frame)  # after a reconnect it is sent again
        return future

    def _oversized(self, frame: ss.ConnectRequest) -> HubError | None:
        """The refusal of a frame larger than the hub takes (its welcome says how large):
        sent, it would end the stream, and be sent again after every reconnect."""
        limit = self.welcome.max_frame_bytes
        size = frame.ByteSize() if limit else 0
        if size <= limit:
            return None
        return HubError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"the frame is {size} bytes, over the hub's limit of {limit} "
            "(server.max_message_bytes): send fewer or smaller envelopes at a time",
        )

    async def _request(self, frame: ss.ConnectRequest) -> ss.ConnectResponse:
        response = await (await self._send_tracked(frame))
        if response.HasField("error"):
            raise HubError(status_from_number(response.error.code), response.error.message)
        return response

    # API ----------------------------------------------------------------------------------

    async def publish(
        self, channel: str, payload: bytes | str, **fields: Any
    ) -> envelope_pb2.PublishResult:
        """Publish one envelope; safe across reconnects (its id makes the retry a duplicate)."""
        from agentplex.client.client import envelope

        results = await self.publish_batch([envelope(channel, payload, **fields)])
        return results[0]

    async def publish_batch(
        self, envelopes: list[envelope_pb2.Envelope]
    ) -> list[envelope_pb2.PublishResult]:
        frame = ss.ConnectRequest(publish=ss.Publish(envelopes=envelopes))
        response = await self._request(frame)
        return list(response.receipt.published)

    async def request(
        self,
        agent_id: str,
        payload: bytes | str,
        *,
        timeout: float = 30.0,
        **fields: Any,
    ) -> envelope_pb2.Envelope:
        """Send `payload` to another agent's inbox and wait for its reply: an envelope on this
        agent's inbox with the same correlation id (see `reply`). NOT_FOUND at once when there
        is no such agent; DEADLINE_EXCEEDED when no reply comes within `timeout` seconds."""
        if not self.agent_id:
            raise SessionClosed(
                "request() needs a session registered as an agent: its inbox gets the reply"
            )
        correlation = uuid.uuid4().hex
        waiting: asyncio.Future[envelope_pb2.Envelope] = asyncio.get_running_loop().create_future()
        self._replies[correlation] = waiting
        try:
            await self.publish(
                f"agent.{agent_id}",
                payload,
                reply_to=self._inbox_name(),
                correlation_id=correlation,
                **fields,
            )
            return await asyncio.wait_for(waiting, timeout)
        except TimeoutError:
            raise HubError(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"no reply from {agent_id} within {timeout:g}s"
            ) from None
        finally:
            self._replies.pop(correlation, None)

    async def reply(
        self, request: envelope_pb2.Envelope, payload: bytes | str, **fields: Any
    ) -> envelope_pb2.PublishResult:
        """Answer a request: publish on its `reply_to` with its correlation id."""
        if not request.reply_to:
            raise ValueError(f"envelope {request.id} has no reply_to to answer on")
        return await self.publish(
            request.reply_to, payload, correlation_id=request.correlation_id, **fields
        )

    async def subscribe(
        self,
        *channels: str,
        since: dict[str, int | envelope_pb2.StreamPosition] | None = None,
        ack: bool = False,
        auto_ack: bool = True,
    ) -> SessionSubscription:
        """Subscribe to names and patterns. With `ack`, each delivery must be acknowledged
        (automatically once the next one is requested, unless `auto_ack=False`)."""
        sub = SessionSubscription(list(channels), ack, auto_ack, self)
        positions = requested(since)
        for start in positions:  # ahead of the receipt's top: the replay comes after it
            self.positions.begin(start.channel, start.position)
        self._subs.append(sub)
        try:
            frame = ss.ConnectRequest(
                subscribe=ss.Subscribe(channels=channels, since=positions, ack=ack)
            )
            response = await self._request(frame)
        except BaseException:
            self._subs.remove(sub)
            raise
        sub.states = list(response.receipt.subscriptions)
        return sub

    async def _unsubscribe(self, sub: SessionSubscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        still = {c for other in self._subs for c in other.channels}
        gone = [c for c in sub.channels if c not in still]
        # Names still wanted, but by no subscription with acks any more: the hub only ever adds
        # acks to a name, so it is asked for them anew, without, from where they stand.
        unacked = [
            c
            for c in sub.channels
            if sub.ack and c in still and not any(o.ack and c in o.channels for o in self._subs)
        ]
        if gone or unacked:
            unsubscribe = ss.Unsubscribe(channels=gone + unacked)
            await self._request(ss.ConnectRequest(unsubscribe=unsubscribe))
        if unacked:
            since = [p for p in self.positions.as_list() if covers(unacked, p.channel)]
            subscribe = ss.Subscribe(channels=unacked, since=since)
            await self._request(ss.ConnectRequest(subscribe=subscribe))
        # What waits in its queue can still be read, but no ack is expected for it any more
        # (the hub stopped redelivering it): it must not hold back acks of redeliveries.
        waiting = []
        while not sub.queue.empty():
            waiting.append(sub.queue.get_nowait())
        for message in waiting:
            if message is not None and not any(
                other.ack and other.wants(message.envelope.channel) for other in self._subs
            ):
                self._unacked.discard(_key(message.envelope))
            sub.queue.put_nowait(message)
        sub.queue.put_nowait(None)

    def _inbox_name(self) -> str:
        return f"agent.{self.agent_id}"

    def inbox(self) -> SessionSubscription:
        """Direct messages to this agent (`agent.<id>`), acknowledged as they are processed."""
        for sub in self._subs:
            if sub.channels == [self._inbox_name()]:
                return sub
        raise SessionClosed("only a session registered as an agent has an inbox")

    async def ack(self, env: envelope_pb2.Envelope) -> None:
        self._unacked.discard(_key(env))
        position = envelope_pb2.ChannelPosition(channel=env.channel, position=env.position)
        await self._try_write(ss.ConnectRequest(ack=ss.Ack(positions=[position])))

    # Tasks --------------------------------------------------------------------------------

    def on_task(self, handler: TaskHandler) -> TaskHandler:
        """Run `handler` for every task assigned to this agent. Its return value is the result;
        raising TaskRejected gives the task back; any other exception fails it; a cancel from
        the hub arrives as asyncio cancellation. Usable as a decorator."""
        self._handler = handler
        return handler

    def _start_task(self, assignment: ss.TaskAssignment) -> None:
        key = (assignment.task.id, assignment.attempt)
        if key in self._running:
            # Sent again after a resume: the accept may have been lost on the old stream.
            self._spawn_write(self._accept(assignment.task.id, assignment.attempt))
            return
        if self._handler is None:
            return
        context = TaskContext(self, assignment)
        task = asyncio.get_running_loop().create_task(self._work(context, self._handler))
        self._running[key] = (task, context)
        task.add_done_callback(lambda _: self._running.pop(key, None))

    async def _work(self, context: TaskContext, handler: TaskHandler) -> None:
        def update(**fields: Any) -> ss.ConnectRequest:
            return ss.ConnectRequest(
                task_update=ss.TaskUpdate(task_id=context.id, attempt=context.attempt, **fields)
            )

        await self._try_write(self._accept(context.id, context.attempt))
        try:
            outcome = update(result=payload(await handler(context)))
        except asyncio.CancelledError:
            return  # the hub canceled the task (or the session is closing)
        except TaskRejected as rejected:
            outcome = update(reject=ss.TaskReject(reason=str(rejected)))
        except Exception as err:
            log.exception("task %s failed", context.id)
            outcome = update(failure=task_pb2.TaskError(code="UNKNOWN", message=str(err)[:1000]))
        with contextlib.suppress(HubError, SessionClosed):
            await self._request(outcome)

    async def submit(
        self,
        input: bytes | str | task_pb2.Payload | None = None,
        **options: Unpack[TaskOptions],
    ) -> TaskHandle:
        """Submit a task over this session, as `Client.submit` does with a call of its own:
        a frame on the open stream costs the hub and the client far less than a new call.
        Without an `idempotency_key` one is made up, so the frame, sent again after a
        reconnect, finds the task it made rather than making a second."""
        task = new_task(input, **options)
        task.idempotency_key = task.idempotency_key or uuid.uuid4().hex
        response = await self._request(ss.ConnectRequest(submit_task=ss.SubmitTask(task=task)))
        return TaskHandle(self.client, response.receipt.task)

    @staticmethod
    def _accept(task_id: str, attempt: int) -> ss.ConnectRequest:
        """An accept needs no receipt: if it is lost, the hub offers the task again on resume
        (and `_start_task` accepts again) or re-routes it after its accept deadline."""
        return ss.ConnectRequest(
            task_update=ss.TaskUpdate(task_id=task_id, attempt=attempt, accept=ss.TaskAccept())
        )

    def _spawn_write(self, frame: ss.ConnectRequest) -> None:
        task = asyncio.get_running_loop().create_task(self._try_write(frame))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @property
    def running_tasks(self) -> int:
        return len(self._running)

    async def set_status(self, status: int) -> None:
        """Report ONLINE, BUSY, WAITING_INPUT or DRAINING."""
        self.status = status
        await self._request(
            ss.ConnectRequest(heartbeat=ss.Heartbeat(status=status))  # type: ignore[arg-type]
        )
