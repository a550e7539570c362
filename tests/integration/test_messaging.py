"""Publish, subscribe, replay and history over real gRPC on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator

import grpc
import pytest

from agentplex.client import Client, HubError, envelope
from agentplex.node import HubNode
from agentplex.v1 import envelope_pb2, messaging_service_pb2 as ms
from tests.support.hubs import fast_settings
from tests.support.outage import Outage
from tests.support.streams import filled, reached, take, until
from tests.support.tamper import tamper


async def test_publish_reaches_subscribers_of_names_and_patterns(
    client: Client, client2: Client
) -> None:
    by_name = client2.subscribe("jobs.build")
    by_pattern = client2.subscribe("jobs.*")
    got_name = asyncio.create_task(take(by_name, 2))
    got_pattern = asyncio.create_task(take(by_pattern, 3))
    await asyncio.wait_for(by_name.ready.wait(), 5)
    await asyncio.wait_for(by_pattern.ready.wait(), 5)
    await client.publish("jobs.build", b"1")
    await client.publish("jobs.test", b"2")
    await client.publish("other", b"x")
    await client.publish("jobs.build", b"3")
    assert [e.payload for e in await got_name] == [b"1", b"3"]
    pattern = await got_pattern
    assert [(e.channel, e.payload) for e in pattern] == [
        ("jobs.build", b"1"),
        ("jobs.test", b"2"),
        ("jobs.build", b"3"),
    ]
    assert [e.position.seq for e in pattern if e.channel == "jobs.build"] == [1, 2]


async def test_positions_and_integrity_fields(client: Client) -> None:
    results = [await client.publish("c", f"m{i}") for i in range(5)]
    assert [r.position.seq for r in results] == [1, 2, 3, 4, 5]
    assert len({r.position.epoch for r in results}) == 1
    page = await client.history("c")
    for env in page.envelopes:
        assert env.sha256 == hashlib.sha256(env.payload).hexdigest()
        assert env.sender == "anonymous"
        assert env.created_at.seconds > 0
    assert page.position.seq == 5 and page.recovered


async def test_batch_is_accepted_in_order(client: Client) -> None:
    batch = [envelope(f"b{i % 2}", f"p{i}") for i in range(10)]
    results = await client.publish_batch(batch)
    assert [(r.channel, r.position.seq) for r in results] == [
        (f"b{i % 2}", i // 2 + 1) for i in range(10)
    ]
    page = await client.history("b1")
    assert [e.payload for e in page.envelopes] == [b"p1", b"p3", b"p5", b"p7", b"p9"]


async def test_duplicate_id_returns_original_position_and_stores_once(client: Client) -> None:
    first = await client.publish("d", "once", id="order-42")
    await client.publish("d", "other")
    again = await client.publish("d", "once (retry)", id="order-42")
    assert again.duplicate and not first.duplicate
    assert again.position == first.position
    page = await client.history("d")
    assert [e.payload for e in page.envelopes] == [b"once", b"other"]


async def test_replay_from_position_then_live_with_no_gap_or_duplicate(
    client: Client, client2: Client
) -> None:
    for i in range(1, 6):
        await client.publish("r", f"{i}")
    sub = client2.subscribe("r", since={"r": 2})
    got = asyncio.create_task(take(sub, 5))
    await asyncio.wait_for(sub.ready.wait(), 5)
    assert sub.states[0].recovered
    await client.publish("r", "6")
    await client.publish("r", "7")
    assert [e.payload for e in await got] == [b"3", b"4", b"5", b"6", b"7"]


async def test_replay_longer_than_half_the_session_queue_is_sent_while_it_is_read() -> None:
    # The replay waits for room in the outbox once it is half full (limits.session_queue / 2);
    # if the stream wrote nothing until the whole replay was queued, it would wait forever.
    limits = {"session_queue": 200, "history_page": 50, "max_batch": 100}
    async with (
        HubNode(fast_settings(limits=limits)) as node,
        Client(node.grpc_address) as client,
    ):
        for start in range(0, 400, 100):
            await client.publish_batch(
                [envelope("deep", f"{i}") for i in range(start, start + 100)]
            )
        sub = client.subscribe("deep", since={"deep": 0})
        replayed = await take(sub, 400)
        assert sub.states[0].recovered and sub.states[0].position.seq == 400
        await client.publish("deep", "live")
        [live] = await take(sub, 1)
        assert [e.position.seq for e in replayed] == list(range(1, 401))
        assert (live.position.seq, live.payload) == (401, b"live")


async def test_subscription_resumes_a_channel_that_was_quiet_before_the_drop(
    node: HubNode, client: Client
) -> None:
    """A named channel that had sent nothing when the stream dropped resumes from where the
    subscription began: what was published on it during the outage arrives, once."""
    async with Outage(node.grpc_address) as outage, Client(outage.address) as remote:
        sub = remote.subscribe("busy", "quiet")
        received: list[envelope_pb2.Envelope] = []

        async def consume() -> None:
            async for env in sub:
                received.append(env)

        consuming = asyncio.create_task(consume())
        await asyncio.wait_for(sub.ready.wait(), 5)
        await client.publish("busy", "b1")
        await filled(received, 1)
        outage.cut()
        sub.ready.clear()
        await client.publish("quiet", "q1")  # during the outage
        outage.restore()
        await asyncio.wait_for(sub.ready.wait(), 10)
        await client.publish("quiet", "q2")
        await until(lambda: reached(received, 2))
        await asyncio.sleep(0.1)  # a duplicate would come now
        assert [(e.channel, e.payload) for e in received] == [
            ("busy", b"b1"),
            ("quiet", b"q1"),
            ("quiet", b"q2"),
        ]
        consuming.cancel()


async def test_history_paging(client: Client) -> None:
    await client.publish_batch([envelope("h", f"{i}") for i in range(1, 26)])
    seen: list[bytes] = []
    since = 0
    while True:
        page = await client.history("h", since=since, limit=10)
        if not page.envelopes:
            break
        seen += [e.payload for e in page.envelopes]
        since = page.envelopes[-1].position.seq
    assert seen == [f"{i}".encode() for i in range(1, 26)]
    latest = await client.history("h", limit=3)
    assert [e.payload for e in latest.envelopes] == [b"23", b"24", b"25"]


@pytest.fixture
async def small(  # a hub that keeps 5 envelopes per channel, and two clients of it
) -> AsyncIterator[tuple[Client, Client]]:
    async with (
        HubNode(fast_settings(channels={"history_size": 5})) as node,
        Client(node.grpc_address) as one,
        Client(node.grpc_address) as two,
    ):
        yield one, two


async def test_trimmed_gap_is_reported_unrecovered(small: tuple[Client, Client]) -> None:
    client, client2 = small
    for i in range(1, 11):
        await client.publish("t", f"{i}")
    page = await client.history("t", since=2)
    assert not page.recovered
    assert [e.payload for e in page.envelopes] == [b"6", b"7", b"8", b"9", b"10"]
    sub = client2.subscribe("t", since={"t": 2})
    got = await take(sub, 5)
    assert not sub.states[0].recovered
    assert [e.position.seq for e in got] == [6, 7, 8, 9, 10]
    fine = await client.history("t", since=7)
    assert fine.recovered and [e.position.seq for e in fine.envelopes] == [8, 9, 10]


async def test_other_epoch_is_reported_unrecovered(client: Client) -> None:
    await client.publish("e", "1")
    page = await client.history("e", since=envelope_pb2.StreamPosition(seq=1, epoch="stale"))
    assert not page.recovered
    assert [e.payload for e in page.envelopes] == [b"1"]


async def test_subscription_reconnects_after_hub_restart_without_duplicates() -> None:
    """A hub restart (memory engine) changes the epoch: the subscriber is told, and keeps
    receiving what is published after the restart, once each."""
    settings = fast_settings()
    node = HubNode(settings)
    await node.start()
    address = node.grpc_address
    port = node.grpc_port
    async with Client(address) as publisher, Client(address) as subscriber:
        sub = subscriber.subscribe("live")
        received: list[bytes] = []

        async def consume() -> None:
            async for env in sub:
                received.append(env.payload)
                if len(received) == 3:
                    return

        task = asyncio.create_task(consume())
        await asyncio.wait_for(sub.ready.wait(), 5)
        await publisher.publish("live", "before")
        await asyncio.sleep(0.2)
        await node.stop(grace=0)
        sub.ready.clear()
        restarted = HubNode(fast_settings(server={"grpc_port": port}))
        await restarted.start()
        try:
            await asyncio.wait_for(sub.ready.wait(), 10)
            await publisher.publish("live", "after-1")
            await publisher.publish("live", "after-2")
            await asyncio.wait_for(task, 10)
        finally:
            await restarted.stop(grace=0)
    assert received == [b"before", b"after-1", b"after-2"]


BAD_PUBLISHES = [
    (
        envelope_pb2.Envelope(channel="bad channel"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "envelope.channel",
    ),
    (envelope_pb2.Envelope(channel=""), grpc.StatusCode.INVALID_ARGUMENT, "envelope.channel"),
    (
        envelope_pb2.Envelope(channel="x" * 201),
        grpc.StatusCode.INVALID_ARGUMENT,
        "envelope.channel",
    ),
    (
        envelope_pb2.Envelope(channel="ok", payload=b"x" * (1024 * 1024 + 1)),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "limits.max_payload_bytes",
    ),
    (
        envelope_pb2.Envelope(channel="ok", headers={f"h{i}": "v" for i in range(65)}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "envelope.headers",
    ),
    (
        envelope_pb2.Envelope(channel="ok", headers={"big": "v" * 9000}),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "limits.max_header_bytes",
    ),
    (
        envelope_pb2.Envelope(channel="ok", id="has space"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "envelope.id",
    ),
    (
        envelope_pb2.Envelope(channel="ok", reply_to="no/slash"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "envelope.reply_to",
    ),
    (
        envelope_pb2.Envelope(channel="_sys.agents"),
        grpc.StatusCode.PERMISSION_DENIED,
        "_sys.agents",
    ),
    (envelope_pb2.Envelope(channel="agent.nobody"), grpc.StatusCode.NOT_FOUND, "nobody"),
]


@pytest.mark.parametrize(("env", "code", "named"), BAD_PUBLISHES)
async def test_bad_publish_is_refused_clearly_and_nothing_is_lost(
    client: Client, env: envelope_pb2.Envelope, code: grpc.StatusCode, named: str
) -> None:
    await client.publish("ok", "kept")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.messaging.Publish(ms.PublishRequest(envelope=env))
    assert refused.value.code() == code
    assert named in (refused.value.details() or "")
    # The same envelope inside a batch names its index, and the batch is refused whole.
    with pytest.raises(grpc.aio.AioRpcError) as batch:
        await client.messaging.PublishBatch(
            ms.PublishBatchRequest(envelopes=[envelope("ok", "not kept"), env])
        )
    assert batch.value.code() == code
    if named.startswith("envelope."):
        assert named.replace("envelope.", "envelopes[1].") in (batch.value.details() or "")
    page = await client.history("ok")
    assert [e.payload for e in page.envelopes] == [b"kept"]
    assert (await client.publish("ok", "still up")).position.seq == 2


async def test_publish_without_envelope_and_empty_or_oversized_batches(client: Client) -> None:
    with pytest.raises(HubError, match="envelope is required"):
        await client._call(client.messaging.Publish, ms.PublishRequest())
    with pytest.raises(HubError, match="envelopes is empty") as empty:
        await client.publish_batch([])
    assert empty.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(HubError, match=r"limits\.max_batch") as big:
        await client.publish_batch([envelope("ok", "x") for _ in range(1001)])
    assert big.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (await client.history("ok")).envelopes == []


@pytest.mark.parametrize(
    ("request_", "named"),
    [
        (ms.SubscribeRequest(), "channels is empty"),
        (ms.SubscribeRequest(channels=["bad name"]), "channels[0]"),
        (ms.SubscribeRequest(channels=["ok", "a{b"]), "channels[1]"),
        (
            ms.SubscribeRequest(
                channels=["a"],
                since=[envelope_pb2.ChannelPosition(channel="b", position={"seq": 1})],
            ),
            "since[0].channel",
        ),
        (
            ms.SubscribeRequest(
                channels=["a.*"],
                since=[envelope_pb2.ChannelPosition(channel="a.*", position={"seq": 1})],
            ),
            "since[0].channel",
        ),
        (ms.SubscribeRequest(channels=["agent.someone"]), "inbox"),
    ],
)
async def test_bad_subscribe_is_refused(
    client: Client, request_: ms.SubscribeRequest, named: str
) -> None:
    call = client.messaging.Subscribe(request_)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _ in call:
            pass
    assert refused.value.code() in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert named in (refused.value.details() or "")
    assert (await client.publish("ok", "up")).position.seq == 1


async def test_too_many_subscriptions(client: Client) -> None:
    call = client.messaging.Subscribe(ms.SubscribeRequest(channels=[f"c{i}" for i in range(1001)]))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _ in call:
            pass
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limits.max_subscriptions" in (refused.value.details() or "")


@pytest.mark.parametrize(
    ("request_", "code", "named"),
    [
        (ms.HistoryRequest(channel="bad name"), grpc.StatusCode.INVALID_ARGUMENT, "channel"),
        (ms.HistoryRequest(channel="h.*"), grpc.StatusCode.INVALID_ARGUMENT, "channel"),
        (ms.HistoryRequest(channel="agent.x"), grpc.StatusCode.PERMISSION_DENIED, "inbox"),
    ],
)
async def test_bad_history_is_refused(
    client: Client, request_: ms.HistoryRequest, code: grpc.StatusCode, named: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.messaging.History(request_)
    assert refused.value.code() == code
    assert named in (refused.value.details() or "")


async def test_history_limit_is_capped_by_the_page_setting(client: Client) -> None:
    await client.publish_batch([envelope("cap", "x") for _ in range(1000)])
    await client.publish_batch([envelope("cap", "y") for _ in range(500)])
    page = await client.history("cap", since=0, limit=5000)
    assert len(page.envelopes) == 1000


async def test_corrupt_history_entry_is_skipped_counted_and_audited(
    client: Client, client2: Client, node: HubNode, caplog: pytest.LogCaptureFixture
) -> None:
    """An entry whose payload no longer matches its sha256 is never served as good data, not by
    History and not by a replay."""
    for i in range(1, 4):
        await client.publish("sealed", f"m{i}")
    await tamper(node.hub.engine, "sealed", 2, b"m2", b"mX")
    with caplog.at_level(logging.WARNING, logger="agentplex.audit"):
        page = await client.history("sealed")
    assert [e.payload for e in page.envelopes] == [b"m1", b"m3"]
    assert node.hub.metrics.integrity_failures == 1
    assert "integrity failure" in caplog.text and "sealed seq 2" in caplog.text
    sub = client2.subscribe("sealed", since={"sealed": 0})
    replayed = await take(sub, 2)
    assert [e.payload for e in replayed] == [b"m1", b"m3"]
    assert node.hub.metrics.integrity_failures == 2
