"""The Redis edge against a private redis-server: hub traffic mirrored out on `msg:`, publishes
in from `pub:` (and what is refused there), the leader lock between nodes, a Redis restart."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from google.protobuf import json_format
from redis.exceptions import ConnectionError as RedisConnectionError

from agentplex.client import Client
from agentplex.config import Settings
from agentplex.core.channel_log import Accepted
from agentplex.edges.envelope_json import envelope_json
from agentplex.edges.redis.leader import LeaderLock
from agentplex.edges.redis.mirror import Mirror
from agentplex.edges.redis.names import Names
from agentplex.hub import Hub
from agentplex.node import HubNode
from agentplex.v1 import envelope_pb2
from tests.support.hubs import fast_settings
from tests.support.redis_edge import edge_hub, edge_of, edge_settings, unique_prefix, until
from tests.support.redis_server import RedisServer, find_redis_server, redis_server
from tests.support.streams import take
from tests.support.tls import certificates

pytestmark = pytest.mark.skipif(find_redis_server() is None, reason="no redis-server found")


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server() as running:
        yield running


@pytest.fixture
async def redis(server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    async with aioredis.Redis(host=server.host, port=server.port) as r:
        yield r


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


@pytest.fixture
async def node(server: RedisServer, prefix: str) -> AsyncIterator[HubNode]:
    async with edge_hub(server.url, prefix, ingress="chat, in.*") as running:
        yield running


@pytest.fixture
async def client(node: HubNode) -> AsyncIterator[Client]:
    async with Client(node.grpc_address) as c:
        yield c


async def next_message(pubsub: aioredis.client.PubSub, timeout: float = 5.0) -> bytes:
    async def read() -> bytes:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                data: bytes = message["data"]
                return data

    return await asyncio.wait_for(read(), timeout)


# Mirror out ---------------------------------------------------------------------------------


async def test_grpc_publishes_are_mirrored_as_canonical_json(
    node: HubNode, client: Client, redis: aioredis.Redis, prefix: str
) -> None:
    async with redis.pubsub() as by_pattern, redis.pubsub() as by_name:
        await by_pattern.psubscribe(f"{prefix}msg:*")
        await by_name.subscribe(f"{prefix}msg:jobs.build")
        await client.publish("chat", b"hello")
        result = await client.publish("jobs.build", b"\x00binary")
        first = json_format.Parse(await next_message(by_pattern), envelope_pb2.Envelope())
        second = json_format.Parse(await next_message(by_pattern), envelope_pb2.Envelope())
        named = json_format.Parse(await next_message(by_name), envelope_pb2.Envelope())
    assert (first.channel, first.payload, first.position.seq) == ("chat", b"hello", 1)
    assert first.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert first.position.epoch and first.id and first.sender == "anonymous"
    assert second == named
    assert named.payload == b"\x00binary" and named.position == result.position


async def test_on_the_redis_engine_the_engine_mirrors_once_in_order_from_every_node(
    server: RedisServer, redis: aioredis.Redis, prefix: str
) -> None:
    """With its channels in the edge's Redis, the engine's publish script mirrors what it
    accepts, in the same step: the JSON the script puts together is the canonical JSON of the
    envelope as stored; two nodes publishing on one channel give one message each, in seq
    order; a duplicate gives none."""
    engine = {"name": "redis", "redis_url": server.url, "redis_prefix": prefix.rstrip(":")}

    def settings() -> Settings:
        edge = {"enabled": True, "url": server.url, "prefix": prefix}
        return fast_settings(redis_edge=edge, engine={**engine, "node_ttl": 3.0})

    async with (
        HubNode(settings()) as a,
        HubNode(settings()) as b,
        Client(a.grpc_address) as on_a,
        Client(b.grpc_address) as on_b,
        redis.pubsub() as pubsub,
    ):
        assert edge_of(a).mirror_in_engine and edge_of(b).mirror_in_engine
        await pubsub.subscribe(f"{prefix}msg:shared")
        for i in range(10):
            await (on_a if i % 2 else on_b).publish("shared", f"m{i}", id=f"e{i}")
        await on_a.publish("shared", "again", id="e3")  # a duplicate: stored and mirrored once
        mirrored = [(await next_message(pubsub)).decode() for _ in range(10)]
        with pytest.raises(TimeoutError):
            await next_message(pubsub, timeout=0.3)
        stored = (await on_a.history("shared")).envelopes
    assert mirrored == [envelope_json(env) for env in stored]  # the very same bytes
    assert [json.loads(m)["position"]["seq"] for m in mirrored] == [str(i) for i in range(1, 11)]


async def test_redis_cli_sees_hub_traffic(
    node: HubNode, client: Client, server: RedisServer, prefix: str
) -> None:
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.skip("redis-cli is not installed")
    proc = await asyncio.create_subprocess_exec(
        *(cli, "-h", server.host, "-p", str(server.port), "--raw"),
        *("PSUBSCRIBE", f"{prefix}msg:*"),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        while (await asyncio.wait_for(proc.stdout.readline(), 5)).strip() != b"1":
            pass  # psubscribe, the pattern, then the count: subscribed
        await client.publish("chat", "from grpc")
        while not (line := await asyncio.wait_for(proc.stdout.readline(), 5)).startswith(b"{"):
            pass  # pmessage, the pattern, the channel, then the data
        data = json.loads(line)
        assert data["channel"] == "chat" and data["position"]["seq"] == "1"
        assert data["sha256"] == hashlib.sha256(b"from grpc").hexdigest()
    finally:
        proc.terminate()
        await proc.wait()


async def test_mirror_leaves_other_nodes_entries_and_bounds_its_queue(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    hub = Hub(fast_settings(limits={"session_queue": 3}))
    async with aioredis.Redis(host=server.host, port=server.port) as redis:
        mirror = Mirror(hub, redis, Names(unique_prefix()))  # not running: nothing drains it

        def entry(local: bool) -> Accepted:
            return Accepted(envelope_pb2.Envelope(channel="c"), 0, "", 0, local=local)

        mirror.deliver(entry(local=False))
        with caplog.at_level(logging.WARNING, "agentplex.edges.redis"):
            for _ in range(5):
                mirror.deliver(entry(local=True))
    assert mirror.dropped == 2
    assert "mirror queue full at 3 envelopes (limits.session_queue)" in caplog.text


async def test_the_mirror_resends_what_a_dropped_connection_left_unanswered(
    server: RedisServer, redis: aioredis.Redis
) -> None:
    """Its PUBLISHes are written from the fan-out call; when Redis drops the connection, what
    it had not answered goes again on the next one: subscribers may see a message twice, never
    miss one, and see the rest in order."""
    hub = Hub(fast_settings())
    names = Names(unique_prefix())
    mirror = Mirror(hub, redis, names)
    running = asyncio.create_task(mirror.run())
    try:
        async with redis.pubsub() as pubsub:
            await pubsub.psubscribe(names.msg("*"))

            def publish(seq: int) -> None:
                env = envelope_pb2.Envelope(id=f"e{seq}", channel="c", payload=b"x")
                env.position.seq = seq
                mirror.deliver(Accepted(env, seq, "", 0))

            for seq in range(1, 51):
                publish(seq)
            await until(lambda: mirror.connection.connected and mirror.mirrored == 50)
            await redis.execute_command("CLIENT", "KILL", "TYPE", "normal")  # the mirror's too
            for seq in range(51, 101):
                publish(seq)
            await until(lambda: mirror.mirrored >= 100 and not mirror._unanswered)
            seen: list[int] = []
            while len(set(seen)) < 100:
                seen.append(int(json.loads(await next_message(pubsub))["position"]["seq"]))
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await mirror.connection.close()
    assert sorted(set(seen)) == list(range(1, 101))
    first_seen = sorted(set(seen), key=seen.index)
    assert first_seen == list(range(1, 101))  # in order, resends aside
    assert mirror.dropped == 0


# Ingress ------------------------------------------------------------------------------------


async def test_redis_publishes_reach_a_grpc_subscriber(
    node: HubNode, client: Client, redis: aioredis.Redis, prefix: str
) -> None:
    subscription = client.subscribe("chat", "in.*")
    got = asyncio.create_task(take(subscription, 3))
    await asyncio.wait_for(subscription.ready.wait(), 5)
    envelope = {"id": "j1", "contentType": "text/plain", "payload": "aGk=", "headers": {"a": "b"}}
    await redis.publish(f"{prefix}pub:chat", json.dumps(envelope))
    await redis.publish(f"{prefix}pub:in.raw", b"\x00raw bytes")
    await redis.publish(
        f"{prefix}pub:chat", json.dumps({**envelope, "id": "j2", "channel": "chat"})
    )
    await redis.publish(f"{prefix}pub:chat", json.dumps(envelope))  # a retry: stored once
    json_env, raw, named = await got
    assert (json_env.id, json_env.payload, json_env.content_type) == ("j1", b"hi", "text/plain")
    assert dict(json_env.headers) == {"a": "b"} and json_env.position.seq == 1
    assert (raw.channel, raw.payload) == ("in.raw", b"\x00raw bytes")
    assert raw.content_type == "application/octet-stream" and raw.sha256
    assert (named.id, named.position.seq) == ("j2", 2)
    await until(lambda: edge_of(node).ingress.accepted == 4)
    assert (await client.history("chat")).position.seq == 2


async def test_refused_publishes_are_logged_and_later_ones_pass(
    node: HubNode,
    client: Client,
    redis: aioredis.Redis,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    subscription = client.subscribe("chat", "secret")
    got = asyncio.create_task(take(subscription, 1))
    await asyncio.wait_for(subscription.ready.wait(), 5)
    bad = [
        ("chat", b'{"payload": "aGk=", '),  # malformed JSON
        ("secret", b"not in the allow-list"),
        ("chat", b'{"bogus": true}'),  # not an Envelope
        ("chat", b'{"replyTo": "no spaces allowed"}'),  # refused by the hub's checks
        ("chat", b'{"channel": "in.other"}'),  # names another channel
    ]
    with caplog.at_level(logging.WARNING, "agentplex.edges.redis"):
        for channel, data in bad:
            await redis.publish(f"{prefix}pub:{channel}", data)
        await redis.publish(f"{prefix}pub:chat", b"good")
        (good,) = await got
    assert good.payload == b"good" and good.position.seq == 1
    edge = edge_of(node)
    assert (edge.ingress.refused, edge.ingress.accepted) == (5, 1)
    for reason in (
        "not an agentplex.v1.Envelope",
        "'secret' is not allowed by redis_edge.ingress (chat,in.*)",
        "bogus",
        "envelope.reply_to",
        "differs from 'chat'",
    ):
        assert reason in caplog.text
    assert (await client.history("chat")).position.seq == 1


# Leadership and recovery --------------------------------------------------------------------


async def test_lock_goes_to_another_node_when_it_expires(server: RedisServer) -> None:
    key = f"{unique_prefix()}edge:leader"
    changes: list[tuple[str, bool]] = []
    async with aioredis.Redis(host=server.host, port=server.port) as redis:
        a = LeaderLock(redis, key, 0.2, "a", lambda held: changes.append(("a", held)))
        b = LeaderLock(redis, key, 0.2, "b", lambda held: changes.append(("b", held)))
        assert await a.attempt() and not await b.attempt()
        assert await a.attempt()  # renewed
        await asyncio.sleep(0.25)  # a stops renewing: the lock expires
        assert await b.attempt()
        assert not await a.attempt()
        await b.release()
        assert await redis.get(key) is None
    assert changes == [("a", True), ("b", True), ("a", False), ("b", False)]


async def test_a_failed_renewal_keeps_the_lock_until_the_lease_runs_out(
    server: RedisServer,
) -> None:
    key = f"{unique_prefix()}edge:leader"
    changes: list[bool] = []
    async with aioredis.Redis(host=server.host, port=server.port) as redis:
        lock = LeaderLock(redis, key, 0.4, "a", changes.append)
        assert await lock.attempt()
        claim = lock._claim

        async def unreachable(**_: object) -> int:
            raise RedisConnectionError("Redis is away for a moment")

        lock._claim = unreachable  # type: ignore[assignment]
        assert await lock.attempt() and lock.held  # within the lease: still leading
        assert changes == [True]
        await asyncio.sleep(0.45)
        assert not await lock.attempt() and not lock.held  # the lease ran out unrenewed
        assert changes == [True, False]
        lock._claim = claim
        assert await lock.attempt()  # the key expired meanwhile: taken again
        await lock.release()
    assert changes == [True, False, True, False]


async def test_a_stalled_holder_stops_leading_until_it_claims_again(server: RedisServer) -> None:
    changes: list[bool] = []
    async with aioredis.Redis(host=server.host, port=server.port) as redis:
        lock = LeaderLock(redis, f"{unique_prefix()}edge:leader", 0.2, "a", changes.append)
        assert await lock.attempt() and lock.held
        await asyncio.sleep(0.25)  # no renewal in time: another node could lead by now
        assert not lock.held
        assert await lock.attempt() and lock.held  # nobody did: the lock is free, claimed again
    assert changes == [True]


async def test_one_node_handles_ingress_and_another_takes_over(
    server: RedisServer, redis: aioredis.Redis, prefix: str
) -> None:
    first = HubNode(edge_settings(server.url, prefix))
    second = HubNode(edge_settings(server.url, prefix))
    await first.start()
    await second.start()
    try:
        await until(lambda: edge_of(first).ready or edge_of(second).ready)
        leader, other = (first, second) if edge_of(first).ready else (second, first)
        await until(lambda: edge_of(other).subscribed)
        assert not edge_of(other).leader.held
        await redis.publish(f"{prefix}pub:chat", b"once")
        await until(lambda: edge_of(leader).ingress.accepted == 1)
        await leader.stop()
        await until(lambda: edge_of(other).ready, what="the other node to take over")
        await redis.publish(f"{prefix}pub:chat", b"twice")
        await until(lambda: edge_of(other).ingress.accepted == 1)
        page = await other.hub.read("chat", None, None, 10)
        assert [e.envelope.payload for e in page.entries] == [b"twice"]
    finally:
        await other.stop(grace=0.1)


async def test_edge_recovers_when_redis_restarts(caplog: pytest.LogCaptureFixture) -> None:
    prefix = unique_prefix()
    with redis_server() as first:
        async with edge_hub(first.url, prefix) as node, Client(node.grpc_address) as client:
            edge = edge_of(node)
            with caplog.at_level(logging.WARNING, "agentplex.edges.redis"):
                os.kill(first.pid, signal.SIGKILL)
                await until(lambda: not edge.ready, what="the edge to notice")
                # The hub keeps serving gRPC meanwhile.
                assert (await client.publish("chat", "while redis is away")).position.seq == 1
                with redis_server(port=first.port) as second:
                    await until(lambda: edge.ready, timeout=10, what="the edge to reconnect")
                    async with aioredis.Redis(host=second.host, port=second.port) as redis:
                        await redis.publish(f"{prefix}pub:chat", b"after the restart")
                        await until(lambda: edge.ingress.accepted == 1)
                        async with redis.pubsub() as pubsub:
                            await pubsub.subscribe(f"{prefix}msg:chat")
                            await client.publish("chat", "mirrored again")
                            # What was queued while Redis was away may come first.
                            seen = [json.loads(await next_message(pubsub))["payload"]]
                            while seen[-1] != "bWlycm9yZWQgYWdhaW4=":  # "mirrored again"
                                seen.append(json.loads(await next_message(pubsub))["payload"])
    assert edge.reconnects >= 1
    assert "reconnecting" in caplog.text


# TLS and password ---------------------------------------------------------------------------


async def test_edge_over_tls_with_a_password(tmp_path: Path) -> None:
    tls = certificates(tmp_path)
    prefix = unique_prefix()
    with redis_server(tls=tls, password="s3cret") as server:
        settings = edge_settings(server.url, prefix)
        engine = replace(settings.engine, **tls.engine_settings())
        async with HubNode(replace(settings, engine=engine)) as node:
            edge = edge_of(node)
            assert edge.url == f"rediss://:***@127.0.0.1:{server.port}/0"
            await until(lambda: edge.ready, what="the edge to connect over TLS")
            async with aioredis.Redis(
                host=server.host, port=server.port, password="s3cret", **tls.client_options()
            ) as redis:
                await redis.publish(f"{prefix}pub:chat", b"over tls")
                await until(lambda: edge.ingress.accepted == 1)
