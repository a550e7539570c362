"""What only the Redis engine has: its keys (hash-tagged, under the prefix), entries altered
inside Redis (never delivered as good data), a clear refusal to start without Redis, and the
publish script's own connection (calls pipelined on it in order; a script or a connection
Redis dropped is made again; a closed connection fails the calls waiting on it)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
    ResponseError,
    TimeoutError as RedisTimeoutError,
)

from agentplex.client import Client, envelope
from agentplex.config import EngineSettings
from agentplex.core.channel_log import Retention
from agentplex.engine.redis import RedisEngine, engine as engine_module
from agentplex.engine.redis.scriptcalls import ScriptCalls, prepare
from agentplex.errors import Unavailable
from agentplex.node import HubNode
from agentplex.redisconn import connect_pubsub
from agentplex.v1 import envelope_pb2
from tests.support.hubs import fast_settings
from tests.support.redis_engine import started_engine
from tests.support.redis_server import RedisServer, free_port, redis_server
from tests.support.streams import take
from tests.support.tamper import rewrite_stream


@pytest.fixture
async def node(private_redis: RedisServer) -> AsyncIterator[HubNode]:
    engine = {"name": "redis", "redis_url": private_redis.url, "redis_prefix": "only-redis"}
    async with HubNode(fast_settings(engine=engine)) as running:
        yield running


async def test_every_key_is_hash_tagged_under_the_prefix(
    node: HubNode, client: Client, private_redis: RedisServer
) -> None:
    await client.publish("tagged.one", "x")
    await client.submit("work", idempotency_key="k1")
    keys = [k.decode() for k in private_redis.client().keys("only-redis:*")]
    assert any("{ch:tagged.one}" in k for k in keys) and any("{tasks}" in k for k in keys)
    assert all(k.startswith("only-redis:{") and "}:" in k for k in keys), keys


async def test_an_undecodable_entry_is_skipped_counted_and_audited(
    node: HubNode, client: Client, client2: Client, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(1, 4):
        await client.publish("mangled", f"m{i}")
    engine = node.hub.engine
    assert isinstance(engine, RedisEngine)
    rewrite_stream(
        engine, "mangled", lambda seq, raw: b"\xff\xff not protobuf" if seq == 2 else raw
    )
    with caplog.at_level(logging.WARNING, logger="agentplex.audit"):
        page = await client.history("mangled")
    assert [e.payload for e in page.envelopes] == [b"m1", b"m3"]
    assert node.hub.metrics.integrity_failures == 1
    assert "mangled seq 2" in caplog.text
    replayed = await take(client2.subscribe("mangled", since={"mangled": 0}), 2)
    assert [e.payload for e in replayed] == [b"m1", b"m3"]


async def test_an_undecodable_fan_out_message_is_dropped_and_the_channel_goes_on(
    node: HubNode,
    client: Client,
    client2: Client,
    private_redis: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = node.hub.engine
    assert isinstance(engine, RedisEngine)
    subscription = client2.subscribe("fanned")
    received = asyncio.ensure_future(take(subscription, 2))
    await asyncio.wait_for(subscription.ready.wait(), 5)
    head = b"abcd1234 another-node 1\n"
    junk = [
        b"no header line",
        head + b"\x00\x01",  # shorter than an entry's seq and length
        head + struct.pack(">QI", 9, 1000) + b"shorter than 1000 bytes",
    ]
    with caplog.at_level(logging.WARNING, logger="agentplex.engine.redis"):
        await client.publish("fanned", "before")
        for data in junk:
            private_redis.client().publish(engine.keys.fan("fanned"), data)
        await client.publish("fanned", "after")
        got = await received
    assert [e.payload for e in got] == [b"before", b"after"]
    assert [e.position.seq for e in got] == [1, 2]
    assert caplog.text.count("dropped an undecodable message") == len(junk)


async def test_concurrent_publishes_get_the_replies_of_their_own_scripts(
    node: HubNode, client: Client
) -> None:
    payloads = [f"p{i}" for i in range(100)]
    results = await asyncio.gather(*(client.publish("burst", p) for p in payloads))
    assert sorted(r.position.seq for r in results) == list(range(1, 101))
    stored = {e.position.seq: e.payload.decode() for e in (await client.history("burst")).envelopes}
    assert [stored[r.position.seq] for r in results] == payloads


async def test_housekeeping_runs_when_due_not_on_every_publish(
    private_redis: RedisServer,
) -> None:
    """A channel's key TTLs are pushed out, and expired dedup ids swept, once they are due
    (the publish script keeps when in the channel's meta hash), not on every publish."""
    ttl_ms, window_ms = 60_000, 10_000
    retention = Retention(history_ttl_ns=ttl_ms * 10**6, dedup_window_ns=window_ms * 10**6)
    redis = private_redis.client()
    async with started_engine(private_redis, "housekeeping", retention) as engine:
        _, log, ids, idx = engine.keys.channel("kept")
        t0 = time.time_ns()
        await engine.publish([_envelope("kept", "a")], t0)
        assert ttl_ms < redis.pttl(log) <= 2 * ttl_ms
        assert window_ms < redis.pttl(ids) <= 2 * window_ms
        assert window_ms < redis.pttl(idx) <= 2 * window_ms
        redis.pexpire(log, 5000)
        await engine.publish([_envelope("kept", "b")], t0 + 10**6)  # nothing due yet
        assert redis.pttl(log) <= 5000 and redis.hexists(ids, "a")
        # Past the dedup window (and the smaller TTL): "a" and "b" expired and are swept,
        # and the TTLs are pushed out again.
        later = t0 + (window_ms + 5) * 10**6
        out = await engine.publish([_envelope("kept", "a")], later)
        assert not out[0].duplicate and out[0].seq == 3
        assert not redis.hexists(ids, "b") and redis.zscore(idx, "b") is None
        assert redis.pttl(log) > ttl_ms


def _envelope(channel: str, envelope_id: str) -> envelope_pb2.Envelope:
    payload = envelope_id.encode()
    return envelope_pb2.Envelope(
        id=envelope_id,
        channel=channel,
        payload=payload,
        sha256=hashlib.sha256(payload).hexdigest(),
    )


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server for one test that flushes scripts, kills clients or counts connections,
    which would disturb or miscount the tests sharing `private_redis`."""
    with redis_server() as server:
        yield server


async def test_publishing_goes_on_when_redis_forgot_the_script(own_redis: RedisServer) -> None:
    engine = {"name": "redis", "redis_url": own_redis.url}
    async with HubNode(fast_settings(engine=engine)) as node, Client(node.grpc_address) as client:
        await client.publish("flushed", "one")
        own_redis.client().script_flush()
        assert (await client.publish("flushed", "two")).position.seq == 2
        own_redis.client().script_flush()  # a batch in several script calls: each sent again
        results = await client.publish_batch(envelope("flushed", f"b{i}") for i in range(120))
        assert [r.position.seq for r in results] == list(range(3, 123))
        page = await client.history("flushed", limit=200)
        assert [e.payload for e in page.envelopes] == [b"one", b"two"] + [
            f"b{i}".encode() for i in range(120)
        ]


NO_KEYS = prepare([])
SLOW = """
local start = redis.call('TIME')
repeat local now = redis.call('TIME')
until (now[1] - start[1]) * 1000000 + now[2] - start[2] > 200000
return 1
"""


@contextlib.asynccontextmanager
async def script_calls(
    server: RedisServer, **options: Any
) -> AsyncIterator[tuple[aioredis.Redis, ScriptCalls, AsyncScript]]:
    """A ScriptCalls on `server` (client `options` such as socket_timeout) and an echo script."""
    redis = aioredis.Redis(host=server.host, port=server.port, **options)
    calls = ScriptCalls(redis)
    try:
        yield redis, calls, redis.register_script("return ARGV[1]")
    finally:
        await calls.close()
        await redis.aclose()


async def test_script_calls_pipeline_and_outlive_a_closed_connection_and_a_flush(
    own_redis: RedisServer,
) -> None:
    async with script_calls(own_redis) as (redis, calls, echo):
        assert await calls.run(echo, NO_KEYS, ["one"]) == b"one"
        listing = redis.register_script("return {KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3]}")
        prepared = prepare(["k1", "k2"], ["lead", 7])  # what every call repeats goes first
        assert await calls.run(listing, prepared, [b"tail"]) == [
            b"k1",
            b"k2",
            b"lead",
            b"7",
            b"tail",
        ]
        # Redis closes the idle connection (as its `timeout` setting does): made again.
        assert own_redis.client().client_kill_filter(_type="normal", skipme=True) == 1
        await asyncio.sleep(0.2)  # for the loop to read the connection's end
        assert await calls.run(echo, NO_KEYS, ["two"]) == b"two"
        own_redis.client().script_flush()  # Redis forgot it: sent whole again
        assert await calls.run(echo, NO_KEYS, ["three"]) == b"three"
        replies = await asyncio.gather(*(calls.run(echo, NO_KEYS, [i]) for i in range(200)))
        assert replies == [b"%d" % i for i in range(200)]
        failing = redis.register_script("return redis.call('NO-SUCH-COMMAND')")
        with pytest.raises(ResponseError):
            await calls.run(failing, NO_KEYS, [])
        assert await calls.run(echo, NO_KEYS, ["after an error reply"]) == b"after an error reply"
        waiting = asyncio.ensure_future(calls.run(redis.register_script(SLOW), NO_KEYS, []))
        await asyncio.sleep(0.05)
        await calls.close()
        with pytest.raises(RedisConnectionError):
            await waiting
        assert await calls.run(echo, NO_KEYS, ["reopened"]) == b"reopened"


async def test_script_calls_time_out_on_a_stalled_redis_and_recover(
    own_redis: RedisServer,
) -> None:
    """A reply later than the client's socket timeout fails every call waiting on it (the
    engine then answers UNAVAILABLE), and the next call goes out on a new connection."""
    async with script_calls(own_redis, socket_timeout=0.05) as (redis, calls, echo):
        assert await calls.run(echo, NO_KEYS, ["before"]) == b"before"
        own_redis.client().script_load(SLOW)  # so that it goes out first, as EVALSHA
        slow = calls.run(redis.register_script(SLOW), NO_KEYS, [])
        behind = calls.run(echo, NO_KEYS, ["behind the slow one"])
        results = await asyncio.gather(slow, behind, return_exceptions=True)
        assert all(isinstance(r, RedisTimeoutError) for r in results), results
        await asyncio.sleep(0.25)  # the slow script ends
        assert await calls.run(echo, NO_KEYS, ["after"]) == b"after"


async def test_after_a_connection_fails_mid_call_redis_is_looked_at_at_once(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publish whose connection fails while it waits is refused (UNAVAILABLE); the engine
    then checks Redis at once, so a healthy Redis takes work again without waiting out
    WATCH_INTERVAL."""
    monkeypatch.setattr(engine_module, "WATCH_INTERVAL", 60.0)
    async with started_engine(own_redis, "drop") as engine:
        await engine.publish([_envelope("dropped", "a")], time.time_ns())
        busy = asyncio.ensure_future(asyncio.to_thread(own_redis.client().eval, SLOW, 0))
        await asyncio.sleep(0.05)  # Redis runs the slow script: the next publish waits
        waiting = asyncio.ensure_future(engine.publish([_envelope("dropped", "b")], 1))
        await asyncio.sleep(0.05)
        assert engine._publish_calls is not None
        await engine._publish_calls.close()  # its connection goes, the call in flight
        with pytest.raises(Unavailable, match=r"engine\.redis_url"):
            await waiting
        assert not engine.available
        await busy
        for _ in range(250):  # 5 s at most, far below the watch interval
            if engine.available:
                break
            await asyncio.sleep(0.02)
        assert engine.available
        out = await engine.publish([_envelope("dropped", "c")], time.time_ns())
        assert not out[0].duplicate
        page = await engine.history("dropped", None, None, 10)
        assert page.entries[-1].envelope.payload == b"c"


async def test_a_burst_beyond_the_connection_pool_waits_for_connections(
    own_redis: RedisServer,
) -> None:
    async with started_engine(own_redis, "burst", redis_max_connections=4) as engine:
        reads = await asyncio.gather(*(engine.history(f"c{i}", None, None, 1) for i in range(200)))
        assert all(r.entries == [] for r in reads) and engine.available
        assert own_redis.client().info("clients")["connected_clients"] <= 4 + 3


async def test_a_burst_on_the_pub_sub_client_waits_for_connections(
    own_redis: RedisServer,
) -> None:
    """What the Redis edge's sessions write goes through this client, all sessions at once."""
    settings = EngineSettings(redis_url=own_redis.url, redis_max_connections=4)
    redis = connect_pubsub(settings)
    try:
        await asyncio.gather(*(redis.publish("burst", i) for i in range(200)))
        assert own_redis.client().info("clients")["connected_clients"] <= 4 + 1
    finally:
        await redis.aclose()


def test_serve_without_redis_says_so_and_exits() -> None:
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"  # nobody listens there
    serve = [sys.executable, "-m", "agentplex", "serve", "--grpc-port", "0"]
    out = subprocess.run(
        [*serve, "--engine", "redis", "--redis-url", url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1
    assert "engine.redis_url" in out.stderr and "unreachable" in out.stderr
    assert "secret" not in out.stderr + out.stdout


def test_the_redis_fixture_is_private(private_redis: RedisServer) -> None:
    assert private_redis.port != 6379
    assert private_redis.client().ping()
