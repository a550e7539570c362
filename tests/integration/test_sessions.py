"""SessionService.Connect over real gRPC: hello/welcome, inbox with acks and redelivery,
resume within the grace period, expiry after it, heartbeat timeout, slow consumers."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc
import pytest

from agentplex.client import Client, HubError, envelope
from agentplex.client.errors import SessionClosed
from agentplex.client.session import Session, SessionSubscription
from agentplex.core.principal import ANONYMOUS
from agentplex.hub.hub import Page
from agentplex.node import HubNode
from agentplex.v1 import (
    agent_pb2,
    envelope_pb2,
    session_service_pb2 as ss,
    session_service_pb2_grpc,
)
from tests.support.hubs import fast_settings
from tests.support.outage import Outage
from tests.support.streams import filled, reached, take, until

Card = agent_pb2.AgentCard


class Raw:
    """A bare session stream, to send exactly the frames a test needs."""

    def __init__(self, client: Client) -> None:
        self.call = session_service_pb2_grpc.SessionServiceStub(client.channel).Connect()

    def keep_alive(self) -> asyncio.Task[None]:
        """Heartbeat in the background, as a live client would."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(0.2)
                await self.send(heartbeat=ss.Heartbeat())

        return asyncio.create_task(beat())

    async def send(self, **frame: object) -> None:
        await self.call.write(ss.ConnectRequest(**frame))  # type: ignore[arg-type]

    async def read(self, timeout: float = 5.0) -> ss.ConnectResponse:
        frame = await asyncio.wait_for(self.call.read(), timeout)
        assert frame is not grpc.aio.EOF  # type: ignore[attr-defined]
        return frame  # type: ignore[no-any-return]

    async def read_kind(self, kind: str, timeout: float = 5.0) -> ss.ConnectResponse:
        while True:
            frame = await self.read(timeout)
            if frame.WhichOneof("frame") == kind:
                return frame

    async def answer(self, ref: str, timeout: float = 5.0) -> ss.ConnectResponse:
        """The frame answering `ref` (the hello's inbox receipt, ref "", is not it)."""
        while True:
            frame = await self.read(timeout)
            if frame.ref == ref:
                return frame

    async def acking_agent(self, agent_id: str, channel: str) -> asyncio.Task[None]:
        """Register as `agent_id`, heartbeat, and subscribe to `channel` with acks; returns
        the heartbeat task (see `close`)."""
        await self.send(hello=ss.Hello(card=Card(id=agent_id)))
        await self.read_kind("welcome")
        beating = self.keep_alive()
        await self.send(ref="s", subscribe=ss.Subscribe(channels=[channel], ack=True))
        assert (await self.answer("s")).WhichOneof("frame") == "receipt"
        return beating

    def close(self, beating: asyncio.Task[None]) -> None:
        beating.cancel()
        self.call.cancel()


async def test_hello_registers_agent_and_goodbye_removes_it(client: Client) -> None:
    async with client.session(Card(id="worker-1", capabilities=["python"])) as session:
        assert session.agent_id == "worker-1"
        assert session.welcome.resume_token and session.welcome.heartbeat_interval_ms == 200
        agent = await client.get_agent("worker-1")
        assert agent.status == agent_pb2.AGENT_STATUS_ONLINE
    with pytest.raises(HubError) as gone:
        await client.get_agent("worker-1")
    assert gone.value.code == grpc.StatusCode.NOT_FOUND


async def test_session_without_card_is_a_plain_client(client: Client) -> None:
    async with client.session() as session:
        assert session.agent_id == ""
        result = await session.publish("plain", "hi")
        assert result.position.seq == 1
        with pytest.raises(SessionClosed):
            session.inbox()
    assert await client.agents() == []


async def test_direct_message_request_and_reply(client: Client) -> None:
    async with (
        client.session(Card(id="asker")) as asker,
        client.session(Card(id="answerer")) as answerer,
    ):
        await asker.publish("agent.answerer", "2+2?", reply_to="agent.asker", correlation_id="q1")
        [question] = await take(answerer.inbox(), 1)
        assert question.envelope.sender == "asker" and question.attempt == 1
        await answerer.publish(
            question.envelope.reply_to, "4", correlation_id=question.envelope.correlation_id
        )
        [answer] = await take(asker.inbox(), 1)
        assert (answer.envelope.payload, answer.envelope.correlation_id) == (b"4", "q1")


async def test_request_to_missing_agent_fails_at_once(client: Client) -> None:
    async with client.session() as session:
        with pytest.raises(HubError) as missing:
            await session.publish("agent.nobody", "hello?")
        assert missing.value.code == grpc.StatusCode.NOT_FOUND


async def test_only_the_owner_reads_an_inbox(client: Client) -> None:
    async with client.session(Card(id="owner")), client.session(Card(id="snoop")) as snoop:
        with pytest.raises(HubError) as denied:
            await snoop.subscribe("agent.owner")
        assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED
        # A pattern is allowed, but never yields another agent's inbox.
        everything = await snoop.subscribe("agent.*")
        await client.publish("agent.owner", "private")
        await client.publish("agent.snoop", "mine")
        [got] = await take(everything, 1)
        assert got.envelope.payload == b"mine"


async def test_unsubscribing_ends_redelivery_of_what_was_not_acked(client: Client) -> None:
    raw = Raw(client)
    beating = await raw.acking_agent("quitter", "chores")
    await client.publish("chores", "never acked")
    first = await raw.read_kind("deliveries")
    assert [d.attempt for d in first.deliveries.deliveries] == [1]
    await raw.send(ref="u", unsubscribe=ss.Unsubscribe(channels=["chores"]))
    assert (await raw.answer("u")).WhichOneof("frame") == "receipt"
    # ack_timeout is 0.5 s in fast_settings: a redelivery would come well within 2 s.
    with pytest.raises(asyncio.TimeoutError):
        await raw.read_kind("deliveries", timeout=2)
    raw.close(beating)


async def test_unsubscribing_lets_go_of_what_was_left_unread(client: Client) -> None:
    """The SDK's side: deliveries still queued when an acked subscription ends can be read,
    and no longer count as awaiting an ack (nothing is kept for them)."""
    async with client.session(Card(id="leaver")) as session:
        sub = await session.subscribe("errands", ack=True, auto_ack=False)
        await client.publish("errands", "one")
        await client.publish("errands", "two")
        [first] = await take(sub, 1)

        async def both_arrived() -> bool:
            return sub.queue.qsize() == 1

        await until(both_arrived)
        await sub.unsubscribe()
        assert [m.envelope.payload async for m in sub] == [b"two"]
        await first.ack()
        assert not session._unacked  # the leak this guards against: a key per unread message


async def test_when_the_last_subscription_with_acks_goes_the_hub_stops_asking_for_them(
    client: Client, node: HubNode
) -> None:
    """Another subscription on the channel without acks stays: the hub must not keep waiting
    for acks nobody sends, redelivering until the session is cut off."""
    async with client.session(Card(id="mixed")) as session:
        acked = await session.subscribe("mix", ack=True, auto_ack=False)
        plain = await session.subscribe("mix")
        await client.publish("mix", "m1")
        await take(acked, 1)
        await acked.unsubscribe()
        await client.publish("mix", "m2")
        assert [m.envelope.payload for m in await take(plain, 2)] == [b"m1", b"m2"]
        held = node.hub.sessions.holding("mixed")
        assert held is not None and held.subscriptions == {"agent.mixed": True, "mix": False}
        assert not len(held.acks)  # m1 is no longer owed an ack, nor redelivered
        await asyncio.sleep(0.8)  # past ack_timeout (0.5 s): a redelivery would have come
        assert plain.queue.empty()


async def test_unacked_delivery_is_redelivered_with_attempt_count(client: Client) -> None:
    async with client.session(Card(id="slowpoke")) as session:
        sub = await session.subscribe("work", ack=True, auto_ack=False)
        await client.publish("work", "job")
        first = await take(sub, 1)
        assert first[0].attempt == 1
        # ack_timeout is 0.5 s in fast_settings; the session's dedup drops the redelivery, so
        # look at the raw frames instead.
    raw = Raw(client)
    beating = await raw.acking_agent("raw", "work2")
    await client.publish("work2", "job")
    one = await raw.read_kind("deliveries")
    two = await raw.read_kind("deliveries", timeout=3)
    assert [d.attempt for d in one.deliveries.deliveries] == [1]
    assert [d.attempt for d in two.deliveries.deliveries] == [2]
    position = two.deliveries.deliveries[0].envelope.position
    await raw.send(
        ack=ss.Ack(positions=[envelope_pb2.ChannelPosition(channel="work2", position=position)])
    )
    with pytest.raises(TimeoutError):
        await raw.read_kind("deliveries", timeout=1.5)
    raw.close(beating)


async def test_a_redelivery_does_not_ack_a_message_still_waiting_to_be_handled(
    client: Client,
) -> None:
    """The SDK drops a redelivery it has seen, but acks it only once its message was acked: a
    message still waiting in the queue stays unacked, so a crash before it is handled loses
    nothing (the hub delivers it again). Once acked, the hub stops redelivering it."""
    async with client.session(Card(id="backlog")) as session:
        written: list[ss.ConnectRequest] = []
        attempts: list[int] = []
        write, dispatch = session._try_write, session._dispatch

        async def spy_write(frame: ss.ConnectRequest) -> None:
            written.append(frame)
            await write(frame)

        async def spy_dispatch(deliveries: envelope_pb2.Deliveries) -> None:
            attempts.extend(d.attempt for d in deliveries.deliveries)
            await dispatch(deliveries)

        session._try_write, session._dispatch = spy_write, spy_dispatch  # type: ignore[method-assign]
        sub = await session.subscribe("backlog", ack=True, auto_ack=False)
        await client.publish("backlog", "first")
        await client.publish("backlog", "second")
        [first] = await take(sub, 1)  # "second" waits in the queue; neither is acked

        async def redelivered_twice() -> bool:
            return 3 in attempts  # ack_timeout is 0.5 s in fast_settings

        await until(redelivered_twice)
        assert not [f for f in written if f.HasField("ack")], "nothing was handled: no acks"
        await first.ack()
        [second] = await take(sub, 1)
        assert (second.envelope.payload, second.attempt) == (b"second", 1)
        await second.ack()
        acked = [p.position.seq for f in written if f.HasField("ack") for p in f.ack.positions]
        # A redelivery that crossed an ack on the wire is acked again: that is allowed.
        assert acked[0] == first.envelope.position.seq
        assert set(acked) == {first.envelope.position.seq, second.envelope.position.seq}
        await asyncio.sleep(0.2)  # one in flight as the acks went out may still arrive
        seen = len(attempts)
        await asyncio.sleep(1.5)  # three ack timeouts: nothing more comes
        assert len(attempts) == seen


async def test_resume_within_grace_misses_nothing_and_repeats_nothing(client: Client) -> None:
    async with client.session(Card(id="resumer")) as session:
        sub = await session.subscribe("feed")
        inbox = session.inbox()
        received: list[bytes] = []
        direct: list[bytes] = []

        async def consume() -> None:
            async for message in sub:
                received.append(message.envelope.payload)
                if len(received) == 60:
                    return

        async def consume_inbox() -> None:
            async for message in inbox:
                direct.append(message.envelope.payload)
                if len(direct) == 20:
                    return

        tasks = [asyncio.create_task(consume()), asyncio.create_task(consume_inbox())]
        token = session.welcome.resume_token
        for i in range(60):
            await client.publish("feed", f"{i}")
            if i < 20:
                await client.publish("agent.resumer", f"d{i}")
            if i in (10, 30):
                session.drop()
            await asyncio.sleep(0.005)
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        assert received == [f"{i}".encode() for i in range(60)]
        assert direct == [f"d{i}".encode() for i in range(20)]
        assert session.reconnects >= 2
        assert session.welcome.resumed and session.welcome.resume_token == token
        assert (await client.get_agent("resumer")).status == agent_pb2.AGENT_STATUS_ONLINE


async def test_a_resume_finishes_a_replay_the_drop_cut_short(node: HubNode, client: Client) -> None:
    """The stream drops while a replay waits for its next page, with the client holding all
    it was sent: the resume replays the rest of the history, though nothing was left unread."""
    page = node.hub.limits.history_page
    total = page + 20
    for start in range(0, total, 10):
        await client.publish_batch([envelope("deep", f"m{i}") for i in range(start, start + 10)])
    read, gate = node.hub.read, asyncio.Event()

    async def slow_second_page(channel: str, seq: int | None, *rest: Any) -> Page:
        if channel == "deep" and seq:
            await gate.wait()  # an engine slow to answer
        return await read(channel, seq, *rest)

    node.hub.read = slow_second_page  # type: ignore[method-assign]
    first = Raw(client)
    await first.send(hello=ss.Hello(card=Card(id="replayer")))
    token = (await first.read_kind("welcome")).welcome.resume_token
    since = envelope_pb2.ChannelPosition(channel="deep")
    await first.send(ref="s", subscribe=ss.Subscribe(channels=["deep"], since=[since]))
    seqs: list[int] = []
    while len(seqs) < page:
        frame = await first.read_kind("deliveries")
        seqs += [d.envelope.position.seq for d in frame.deliveries.deliveries]
    first.call.cancel()  # the client read all it was sent; the replay waits for page two
    await asyncio.sleep(0.2)
    node.hub.read = read  # type: ignore[method-assign]
    gate.set()
    back = Raw(client)
    reported = envelope_pb2.ChannelPosition(channel="deep")
    reported.position.seq = seqs[-1]
    await back.send(hello=ss.Hello(resume_token=token, positions=[reported]))
    assert (await back.read_kind("welcome")).welcome.resumed
    while seqs[-1] < total:
        frame = await back.read_kind("deliveries")
        seqs += [d.envelope.position.seq for d in frame.deliveries.deliveries]
    assert seqs == list(range(1, total + 1))
    back.call.cancel()


async def test_a_subscription_starts_before_what_is_published_while_it_is_made(
    node: HubNode, client: Client
) -> None:
    """An envelope published as the hub starts listening arrives live, after the position the
    receipt gives; were that position read after listening, it could count the envelope, and
    a client resuming from there would never get it."""
    listen = node.hub.listen

    async def listen_then_publish(subscriber: Any, channel: str) -> None:
        await listen(subscriber, channel)
        if channel == "race":  # another client publishes just then
            await node.hub.publish(ANONYMOUS, [envelope_pb2.Envelope(channel="race")])

    node.hub.listen = listen_then_publish  # type: ignore[method-assign]
    raw = Raw(client)
    await raw.send(hello=ss.Hello())
    await raw.read_kind("welcome")
    await raw.send(ref="s", subscribe=ss.Subscribe(channels=["race"]))
    frames = [await raw.read(), await raw.read()]  # the receipt, and the delivery, any order
    (receipt,) = [f for f in frames if f.ref == "s"]
    (delivered,) = [f for f in frames if f.WhichOneof("frame") == "deliveries"]
    assert receipt.receipt.subscriptions[0].position.seq == 0
    assert delivered.deliveries.deliveries[0].envelope.position.seq == 1
    raw.call.cancel()


async def test_dropped_agent_goes_offline_then_leaves_after_grace(client: Client) -> None:
    raw = Raw(client)
    await raw.send(hello=ss.Hello(card=Card(id="vanishing")))
    welcome = (await raw.read_kind("welcome")).welcome
    events = client.watch_agents(include_current=False)
    watcher = asyncio.create_task(anext(events))
    await asyncio.sleep(0.1)
    raw.call.cancel()
    offline = await asyncio.wait_for(watcher, 5)
    assert offline.agent.status == agent_pb2.AGENT_STATUS_OFFLINE
    left = await asyncio.wait_for(anext(events), 5)
    assert (left.type, left.reason) == (agent_pb2.AGENT_EVENT_TYPE_LEFT, "grace period expired")
    # The token no longer resumes anything: a hello with it starts a fresh session.
    again = Raw(client)
    await again.send(hello=ss.Hello(resume_token=welcome.resume_token))
    fresh = (await again.read_kind("welcome")).welcome
    assert not fresh.resumed and fresh.session_id != welcome.session_id
    again.call.cancel()


async def test_a_new_session_replays_the_inbox_after_the_position_its_hello_reports(
    client: Client,
) -> None:
    """Back after its grace period, an agent starts a new session: the hub replays its inbox
    after the position the hello reports, before what arrives live, without being asked."""
    first = Raw(client)
    await first.send(hello=ss.Hello(card=Card(id="returning")))
    await first.read_kind("welcome")
    await client.publish("agent.returning", "d1")
    seen = (await first.read_kind("deliveries")).deliveries.deliveries[0].envelope.position
    first.call.cancel()
    await client.publish("agent.returning", "d2")  # while away: kept in the inbox's history
    await until(lambda: gone(client, "returning"))
    again = Raw(client)
    inbox = envelope_pb2.ChannelPosition(channel="agent.returning", position=seen)
    await again.send(hello=ss.Hello(card=Card(id="returning"), positions=[inbox]))
    assert not (await again.read_kind("welcome")).welcome.resumed
    await client.publish("agent.returning", "d3")
    received: list[bytes] = []
    while len(received) < 2:
        frame = await again.read_kind("deliveries")
        received += [d.envelope.payload for d in frame.deliveries.deliveries]
    assert received == [b"d2", b"d3"]
    again.call.cancel()


async def test_back_after_the_grace_period_the_inbox_misses_nothing_sent_meanwhile(
    node: HubNode, client: Client
) -> None:
    """Direct messages keep coming while an agent is away past its grace period and as it
    comes back: it receives every one, in order, once. None sent as it comes back may
    overtake those kept for it in history (and have them dropped as duplicates)."""
    async with Outage(node.grpc_address) as outage, Client(outage.address) as remote:
        session = remote.session(Card(id="away"))
        await session.connect()
        received: list[envelope_pb2.Envelope] = []
        consuming = asyncio.create_task(collect(session.inbox(), received))
        last = 0
        sending = True

        async def send() -> None:
            nonlocal last
            while sending:
                with contextlib.suppress(HubError):  # NOT_FOUND while the agent is gone
                    last = (await client.publish("agent.away", "d")).position.seq
                await asyncio.sleep(0)

        publishing = asyncio.create_task(send())
        await until(lambda: reached(received, 1))
        outage.cut()
        await until(lambda: gone(client, "away"))
        outage.restore()
        await until(lambda: reconnected(session), timeout=10)
        await asyncio.sleep(0.3)
        sending = False
        await publishing
        await until(lambda: reached(received, last))  # in order: all before it came first
        assert [e.position.seq for e in received] == list(range(1, last + 1))
        consuming.cancel()
        await session.close()


async def test_back_after_the_grace_period_quiet_channels_miss_nothing(
    node: HubNode, client: Client
) -> None:
    """A channel, or an inbox, that had sent nothing when an agent went away past its grace
    period resumes from where its subscription began: what was published meanwhile arrives."""
    async with Outage(node.grpc_address) as outage, Client(outage.address) as remote:
        session = remote.session(Card(id="quiet"))
        await session.connect()
        sub = await session.subscribe("busy", "still")
        received: list[envelope_pb2.Envelope] = []
        direct: list[envelope_pb2.Envelope] = []
        consuming = [
            asyncio.create_task(collect(sub, received)),
            asyncio.create_task(collect(session.inbox(), direct)),
        ]
        await client.publish("busy", "b1")
        await filled(received, 1)
        outage.cut()
        await client.publish("still", "s1")
        await client.publish("agent.quiet", "d1")
        await until(lambda: gone(client, "quiet"))
        outage.restore()
        await until(lambda: reconnected(session), timeout=10)
        await client.publish("still", "s2")
        await client.publish("agent.quiet", "d2")
        await until(lambda: reached(direct, 2))
        await until(lambda: reached(received, 2))
        assert [e.payload for e in received] == [b"b1", b"s1", b"s2"]
        assert [e.payload for e in direct] == [b"d1", b"d2"]
        for task in consuming:
            task.cancel()
        await session.close()


async def test_back_after_the_grace_period_a_gap_history_lost_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """More was published while the agent was away than history keeps: the subscription's
    states say `recovered` false, and a warning names the channel."""
    settings = fast_settings(channels={"history_size": 2})
    async with (
        HubNode(settings) as node,
        Client(node.grpc_address) as client,
        Outage(node.grpc_address) as outage,
        Client(outage.address) as remote,
    ):
        session = remote.session(Card(id="away"))
        await session.connect()
        sub = await session.subscribe("news")
        await client.publish("news", "n1")
        await take(sub, 1)
        assert sub.states[0].recovered
        outage.cut()
        for i in range(2, 6):
            await client.publish("news", f"n{i}")  # n2 and n3 leave history meanwhile
        await until(lambda: gone(client, "away"))
        outage.restore()
        await until(lambda: reconnected(session), timeout=10)
        assert [m.envelope.payload for m in await take(sub, 2)] == [b"n4", b"n5"]
        assert not sub.states[0].recovered
        assert "['news'] missed while away (recovered=false)" in caplog.text
        await session.close()


async def test_silent_client_is_noticed_by_heartbeat_timeout(client: Client) -> None:
    raw = Raw(client)
    await raw.send(hello=ss.Hello(card=Card(id="silent")))
    await raw.read_kind("welcome")
    # Answer nothing, not even pings: after heartbeat_timeout (1 s) the hub ends the stream.
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        while True:
            await raw.read(timeout=5)
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "session.heartbeat_timeout" in (ended.value.details() or "")
    offline = agent_pb2.AGENT_STATUS_OFFLINE
    await until(lambda: has_status(client, "silent", offline))


async def test_stable_id_held_by_live_session_is_refused(client: Client) -> None:
    async with client.session(Card(id="unique")):
        with pytest.raises(HubError) as taken:
            async with client.session(Card(id="unique"), reconnect=False):
                pass
        assert taken.value.code == grpc.StatusCode.ALREADY_EXISTS


async def test_protocol_errors_get_error_frames_and_the_session_goes_on(client: Client) -> None:
    raw = Raw(client)
    await raw.send(hello=ss.Hello(card=Card(id="prot")))
    await raw.read_kind("welcome")
    await raw.send(ref="t1", task_update=ss.TaskUpdate(task_id="x"))
    error = await raw.read_kind("error")
    assert (error.ref, error.error.code) == ("t1", ss.ERROR_CODE_INVALID_ARGUMENT)
    await raw.send(ref="t2", task_update=ss.TaskUpdate(task_id="x", accept=ss.TaskAccept()))
    error = await raw.read_kind("error")
    assert (error.ref, error.error.code) == ("t2", ss.ERROR_CODE_NOT_FOUND)
    await raw.send(ref="h2", hello=ss.Hello())
    error = await raw.read_kind("error")
    assert error.ref == "h2" and "already started" in error.error.message
    await raw.send(
        ref="p1", publish=ss.Publish(envelopes=[envelope_pb2.Envelope(channel="bad name")])
    )
    error = await raw.read_kind("error")
    assert error.ref == "p1" and error.error.code == ss.ERROR_CODE_INVALID_ARGUMENT
    assert "envelope.channel" in error.error.message and not error.error.fatal
    await raw.send(ref="e1")
    error = await raw.read_kind("error")
    assert error.ref == "e1" and "empty or unknown frame" in error.error.message
    await raw.send(ref="s1", heartbeat=ss.Heartbeat(status=agent_pb2.AGENT_STATUS_OFFLINE))
    error = await raw.read_kind("error")
    assert error.ref == "s1" and "status" in error.error.message
    await raw.send(ref="p2", publish=ss.Publish(envelopes=[envelope_pb2.Envelope(channel="fine")]))
    receipt = await raw.read_kind("receipt")
    assert receipt.ref == "p2" and receipt.receipt.published[0].position.seq == 1
    raw.call.cancel()


async def test_batch_frames_each_answered_as_if_sent_alone(client: Client) -> None:
    """A batch's frames are handled in order, each answered by its own ref; a bad one is
    refused alone, a batch in a batch too, and a batch over limits.max_batch as a whole."""
    raw = Raw(client)
    await raw.send(hello=ss.Hello(card=Card(id="batcher")))
    welcome = await raw.read_kind("welcome")
    assert welcome.welcome.batch_limit == 1000  # limits.max_batch
    good = envelope_pb2.Envelope(channel="batched", payload=b"x")
    frames = [
        ss.ConnectRequest(ref="a", publish=ss.Publish(envelopes=[good])),
        ss.ConnectRequest(ref="b", publish=ss.Publish(envelopes=[envelope_pb2.Envelope()])),
        ss.ConnectRequest(ref="c", batch=ss.ConnectRequestBatch()),
        ss.ConnectRequest(ref="d", publish=ss.Publish(envelopes=[good])),
    ]
    await raw.send(ref="outer", batch=ss.ConnectRequestBatch(frames=frames))
    answers: list[ss.ConnectResponse] = []
    while len(answers) < len(frames):
        frame = await raw.read()
        assert frame.WhichOneof("frame") != "batch"  # this client asked for no batches
        if frame.ref:
            answers.append(frame)
    assert [(a.ref, a.WhichOneof("frame")) for a in answers] == [
        ("a", "receipt"),
        ("b", "error"),
        ("c", "error"),
        ("d", "receipt"),
    ]
    assert "envelope.channel" in answers[1].error.message
    assert "batch.frames[2]: a batch holds no batch" in answers[2].error.message
    assert [a.receipt.published[0].position.seq for a in (answers[0], answers[3])] == [1, 2]
    many = [ss.ConnectRequest(heartbeat=ss.Heartbeat())] * 1001
    await raw.send(ref="big", batch=ss.ConnectRequestBatch(frames=many))
    error = await raw.read_kind("error")
    assert error.ref == "big" and error.error.code == ss.ERROR_CODE_RESOURCE_EXHAUSTED
    assert "1001 frames, over the limit of 1000 (limits.max_batch)" in error.error.message
    assert not error.error.fatal
    await raw.send(ref="after", publish=ss.Publish(envelopes=[good]))
    assert (await raw.read_kind("receipt")).ref == "after"
    raw.call.cancel()


async def test_the_hub_batches_what_is_ready_for_a_client_that_asked(client: Client) -> None:
    """With `hello.batches`, frames ready together come as one batch frame, in order (here 50
    receipts, made without waiting on the engine)."""
    raw = Raw(client)
    await raw.send(hello=ss.Hello(batches=True))
    await raw.read_kind("welcome")
    frames = [ss.ConnectRequest(ref=f"p{i}", heartbeat=ss.Heartbeat()) for i in range(50)]
    await raw.send(batch=ss.ConnectRequestBatch(frames=frames))
    refs: list[str] = []
    batches = 0
    while len(refs) < 50:
        frame = await raw.read()
        inner = frame.batch.frames if frame.WhichOneof("frame") == "batch" else [frame]
        batches += frame.WhichOneof("frame") == "batch"
        refs += [f.ref for f in inner]
    assert refs == [f"p{i}" for i in range(50)]
    assert batches >= 1  # 50 receipts made at once did not go as 50 messages
    raw.call.cancel()


@pytest.mark.parametrize("max_batch", [2, 1000])
async def test_frames_sent_at_once_are_all_answered_within_the_batch_limit(
    max_batch: int,
) -> None:
    """300 publishes at once over one SDK session go out batched, never over the welcome's
    batch_limit (a batch over it would be refused whole and leave every publish in it
    unanswered): each gets its own receipt, each position once."""
    async with (
        HubNode(fast_settings(limits={"max_batch": max_batch})) as node,
        Client(node.grpc_address) as client,
        client.session() as session,
    ):
        assert session.welcome.batch_limit == max_batch
        sent = [session.publish("at.once", f"m{i}") for i in range(300)]
        results = await asyncio.wait_for(asyncio.gather(*sent), 20)
        assert sorted(r.position.seq for r in results) == list(range(1, 301))
        stored = (await client.history("at.once", limit=300)).envelopes
        assert sorted(e.payload for e in stored) == sorted(f"m{i}".encode() for i in range(300))


async def test_a_frame_over_the_hubs_size_limit_is_refused_before_it_is_sent() -> None:
    """Sent, it would end the stream, and the reconnect would send it again, forever."""
    limit = 64 * 1024
    async with (
        HubNode(fast_settings(server={"max_message_bytes": limit})) as node,
        Client(node.grpc_address) as client,
        client.session() as session,
    ):
        assert session.welcome.max_frame_bytes == limit
        big = [envelope("big", b"x" * 40_000) for _ in range(2)]  # each fits, both do not
        with pytest.raises(HubError) as refused:
            await asyncio.wait_for(session.publish_batch(big), 5)
        assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"over the hub's limit of {limit} (server.max_message_bytes)" in str(refused.value)
        assert (await session.publish_batch(big[:1]))[0].position.seq == 1
        assert (await session.publish("big", "small")).position.seq == 2
        assert session.reconnects == 0


async def test_first_frame_must_be_hello(client: Client) -> None:
    raw = Raw(client)
    await raw.send(ref="x", heartbeat=ss.Heartbeat())
    error = await raw.read_kind("error")
    assert error.error.fatal and "first frame" in error.error.message
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await raw.read()
    assert ended.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_bad_card_in_hello_is_refused(client: Client) -> None:
    with pytest.raises(HubError) as refused:
        async with client.session(Card(id="bad id")):
            pass
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "card.id" in refused.value.message


async def has_status(client: Client, agent_id: str, status: int) -> bool:
    return (await client.get_agent(agent_id)).status == status


async def gone(client: Client, agent_id: str) -> bool:
    try:
        await client.get_agent(agent_id)
    except HubError as err:
        return err.code == grpc.StatusCode.NOT_FOUND
    return False


async def reconnected(session: Session) -> bool:
    return session.reconnects > 0 and session.connected.is_set()


async def collect(source: SessionSubscription, envelopes: list[envelope_pb2.Envelope]) -> None:
    async for message in source:
        envelopes.append(message.envelope)


async def sessions_gone(node: HubNode) -> None:
    while len(node.hub.sessions):
        await asyncio.sleep(0.05)


async def test_closed_subscriptions_leave_nothing_behind(client: Client, node: HubNode) -> None:
    own = len(node.hub.index)  # the hub's own (the task manager hears _sys.tasks)
    for _ in range(5):
        sub = client.subscribe("x")
        task = asyncio.create_task(anext(aiter(sub)))
        await asyncio.wait_for(sub.ready.wait(), 5)
        sub.cancel()
        with pytest.raises((StopAsyncIteration, asyncio.CancelledError, HubError)):
            await task
    await asyncio.wait_for(sessions_gone(node), 5)
    assert len(node.hub.index) == own


async def test_request_reply_between_agents_with_a_deadline(client: Client) -> None:
    async with (
        client.session(Card(id="caller")) as caller,
        client.session(Card(id="answerer-2")) as answerer,
    ):

        async def answer() -> None:
            async for message in answerer.inbox():
                await answerer.reply(message.envelope, message.envelope.payload.upper())

        serving = asyncio.create_task(answer())
        reply = await caller.request("answerer-2", b"ping", timeout=5)
        assert (reply.payload, reply.sender, reply.channel) == (
            b"PING",
            "answerer-2",
            "agent.caller",
        )
        # A reply is consumed by request(): it does not also show up in the caller's inbox.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(aiter(caller.inbox())), 0.3)
        with pytest.raises(HubError) as missing:
            await caller.request("nobody-at-all", b"hello?", timeout=5)
        assert missing.value.code == grpc.StatusCode.NOT_FOUND
        serving.cancel()
        with pytest.raises(HubError) as silent:
            await caller.request("answerer-2", b"anyone?", timeout=0.3)
        assert silent.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "within 0.3s" in silent.value.message
        with pytest.raises(ValueError, match="no reply_to"):
            await caller.reply(envelope_pb2.Envelope(id="x"), b"?")
