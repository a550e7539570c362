"""A consumer that cannot keep up is disconnected with a clear reason; the others go on. A
replay paces itself instead: on the outbox's room and on the ack window."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from agentplex.client import Client, envelope
from agentplex.config import Settings
from agentplex.node import HubNode
from agentplex.v1 import envelope_pb2, session_service_pb2 as ss
from tests.conftest import ENGINES, engine_settings
from tests.integration.test_sessions import Raw


@pytest.fixture(params=ENGINES)
def settings(request: pytest.FixtureRequest) -> Settings:
    limits = {"session_queue": 300, "max_batch": 100, "max_unacked": 100, "history_page": 50}
    return engine_settings(request, limits=limits)


def position_of(delivery: envelope_pb2.Delivery) -> envelope_pb2.ChannelPosition:
    env = delivery.envelope
    return envelope_pb2.ChannelPosition(channel=env.channel, position=env.position)


async def test_slow_consumer_is_cut_off_while_others_go_on(client: Client, node: HubNode) -> None:
    raw = Raw(client)
    await raw.send(hello=ss.Hello())
    await raw.read_kind("welcome")
    await raw.send(ref="s", subscribe=ss.Subscribe(channels=["flood"]))
    await raw.read_kind("receipt")
    healthy = client.subscribe("flood")
    seen = 0

    async def follow() -> None:
        nonlocal seen
        async for _ in healthy:
            seen += 1
            if seen == 3000:
                return

    follower = asyncio.create_task(follow())
    await asyncio.wait_for(healthy.ready.wait(), 5)
    payload = b"x" * 4096
    for _ in range(30):  # the raw session reads nothing: its queue fills and it is cut off
        await client.publish_batch([envelope("flood", payload) for _ in range(100)])
    await asyncio.wait_for(follower, 10)
    with pytest.raises(grpc.aio.AioRpcError) as cut:
        while True:
            await raw.read(timeout=5)
    assert cut.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limits.session_queue" in (cut.value.details() or "")
    assert node.hub.metrics.slow_consumers >= 1
    assert (await client.publish("flood", "still up")).position.seq == 3001


async def test_a_replay_longer_than_max_unacked_waits_for_acks_instead_of_cutting_off(
    client: Client, node: HubNode
) -> None:
    for start in range(0, 300, 100):  # 300 entries, limits.max_unacked is 100
        await client.publish_batch([envelope("backlog", f"{i}") for i in range(start, start + 100)])
    raw = Raw(client)
    await raw.send(hello=ss.Hello())
    await raw.read_kind("welcome")
    beating = raw.keep_alive()
    since = envelope_pb2.ChannelPosition(channel="backlog")
    await raw.send(ref="s", subscribe=ss.Subscribe(channels=["backlog"], since=[since], ack=True))
    await raw.read_kind("receipt")
    firsts: list[int] = []
    while len(firsts) < 300:  # ack what is read, as a client does; frames flow during the replay
        got = (await raw.read_kind("deliveries")).deliveries.deliveries
        firsts += [d.envelope.position.seq for d in got if d.attempt == 1]
        await raw.send(ack=ss.Ack(positions=[position_of(d) for d in got]))
    assert firsts == list(range(1, 301))
    await client.publish("backlog", "live")
    live = (await raw.read_kind("deliveries")).deliveries.deliveries
    assert [d.envelope.position.seq for d in live if d.attempt == 1] == [301]
    assert node.hub.metrics.slow_consumers == 0
    raw.close(beating)


async def test_a_consumer_over_max_unacked_is_cut_off_once(client: Client, node: HubNode) -> None:
    raw = Raw(client)
    await raw.send(hello=ss.Hello())
    await raw.read_kind("welcome")
    await raw.send(ref="s", subscribe=ss.Subscribe(channels=["unacked"], ack=True))
    await raw.read_kind("receipt")
    await client.publish_batch([envelope("unacked", f"{i}") for i in range(100)])
    await client.publish_batch([envelope("unacked", f"{i}") for i in range(100, 200)])
    with pytest.raises(grpc.aio.AioRpcError) as cut:
        while True:
            await raw.read(timeout=5)
    assert cut.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limits.max_unacked" in (cut.value.details() or "")
    assert node.hub.metrics.slow_consumers == 1  # not once per envelope it could not take


async def test_a_resume_replaying_more_than_max_unacked_goes_on_as_the_client_acks(
    client: Client, node: HubNode
) -> None:
    first = Raw(client)
    await first.send(hello=ss.Hello())
    token = (await first.read_kind("welcome")).welcome.resume_token
    await first.send(ref="s", subscribe=ss.Subscribe(channels=["missed"], ack=True))
    await first.read_kind("receipt")
    first.call.cancel()  # dropped without a goodbye: the session waits out its grace period
    for start in range(0, 300, 100):  # 300 missed entries, limits.max_unacked is 100
        await client.publish_batch([envelope("missed", f"{i}") for i in range(start, start + 100)])
    again = Raw(client)
    await again.send(hello=ss.Hello(resume_token=token))
    assert (await again.read_kind("welcome")).welcome.resumed
    beating = again.keep_alive()
    firsts: list[int] = []
    while len(firsts) < 300:
        got = (await again.read_kind("deliveries")).deliveries.deliveries
        firsts += [d.envelope.position.seq for d in got if d.attempt == 1]
        await again.send(ack=ss.Ack(positions=[position_of(d) for d in got]))
    assert firsts == list(range(1, 301))
    assert node.hub.metrics.slow_consumers == 0
    again.close(beating)
