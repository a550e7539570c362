"""The Redis engine's fan-out across a lost pub/sub connection: what a node's subscribers
missed meanwhile is read from history, on every channel they listen to (heard from before or
not); a channel listened to again starts from then; a listen made during the reconnect, or
waiting on a connection that fails, still ends subscribed; a history read refused while Redis
is marked away only delays the reconnect."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest

from agentplex.core.channel_log import Accepted
from agentplex.engine.redis import RedisEngine
from agentplex.v1 import envelope_pb2
from tests.support.redis_edge import until
from tests.support.redis_engine import started_engine
from tests.support.redis_server import RedisServer, find_redis_server, redis_server

pytestmark = pytest.mark.skipif(find_redis_server() is None, reason="no redis-server found")

_ids = itertools.count()


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A Redis of each test's own: the tests kill its pub/sub clients or the server itself."""
    with redis_server() as running:
        yield running


class Heard:
    """What the engine's fan-out hands on, as (channel, seq, payload)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, int, bytes]] = []

    def __call__(self, entries: Sequence[Accepted]) -> None:
        self.entries.extend((e.channel, e.seq, e.envelope.payload) for e in entries)

    def of(self, channel: str) -> list[tuple[int, bytes]]:
        return [(seq, payload) for c, seq, payload in self.entries if c == channel]


@pytest.fixture
async def engine(server: RedisServer) -> AsyncIterator[tuple[RedisEngine, Heard]]:
    heard = Heard()
    async with started_engine(server, "fan", on_publications=heard) as running:
        yield running, heard


async def publish(engine: RedisEngine, channel: str, *payloads: str) -> None:
    envelopes = []
    for payload in payloads:
        data = payload.encode()
        envelopes.append(
            envelope_pb2.Envelope(
                id=f"e-{next(_ids)}",
                channel=channel,
                payload=data,
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )
    await engine.publish(envelopes, time.time_ns())


async def heard_from(engine: tuple[RedisEngine, Heard], channel: str) -> None:
    """Listen to `channel` and hear its first publication come through the fan-out."""
    redis_engine, heard = engine
    await redis_engine.listen(channel)
    await publish(redis_engine, channel, "first")
    await until(lambda: heard.of(channel) == [(1, b"first")])


def drop_pub_sub(server: RedisServer) -> None:
    assert server.client().client_kill_filter(_type="pubsub") >= 1


async def test_every_listened_channel_gets_what_it_missed_while_the_connection_was_lost(
    server: RedisServer, engine: tuple[RedisEngine, Heard]
) -> None:
    redis_engine, heard = engine
    await redis_engine.listen("quiet")  # nothing heard from it before the drop
    await heard_from(engine, "heard")
    drop_pub_sub(server)
    await publish(redis_engine, "heard", "h2")  # published before the node is back
    await publish(redis_engine, "quiet", "q1")
    await until(lambda: len(heard.entries) == 3, what="the gaps filled")
    await publish(redis_engine, "quiet", "q2")
    await until(lambda: len(heard.entries) == 4)
    assert heard.of("heard") == [(1, b"first"), (2, b"h2")]
    assert heard.of("quiet") == [(1, b"q1"), (2, b"q2")]


async def test_a_channel_listened_to_again_starts_from_then(
    server: RedisServer, engine: tuple[RedisEngine, Heard]
) -> None:
    redis_engine, heard = engine
    await heard_from(engine, "again")
    await redis_engine.unlisten("again")
    await publish(redis_engine, "again", "m2", "m3")  # nobody here listens
    await redis_engine.listen("again")
    drop_pub_sub(server)
    await publish(redis_engine, "again", "m4")
    await until(lambda: len(heard.entries) == 2, what="the gap after listening again")
    await asyncio.sleep(0.2)  # and nothing from before it
    assert heard.of("again") == [(1, b"first"), (4, b"m4")]


async def test_a_listen_during_the_reconnect_is_subscribed(
    server: RedisServer, engine: tuple[RedisEngine, Heard]
) -> None:
    redis_engine, heard = engine
    await heard_from(engine, "early")
    fanout = redis_engine._fanout
    assert fanout is not None
    reading, release = asyncio.Event(), asyncio.Event()
    read_gap = fanout._read_gap

    async def held_gap(channel: str, seq: int, epoch: str) -> list[Accepted]:
        reading.set()
        await release.wait()  # the reconnect is reading history when the listen comes
        return await read_gap(channel, seq, epoch)

    fanout._read_gap = held_gap
    drop_pub_sub(server)
    await asyncio.wait_for(reading.wait(), 5)
    await asyncio.wait_for(redis_engine.listen("late"), 5)
    release.set()
    await publish(redis_engine, "late", "l1")
    await until(lambda: heard.of("late") == [(1, b"l1")], what="the late channel heard")


async def test_a_listen_whose_connection_fails_returns_and_is_subscribed_on_reconnect(
    server: RedisServer, engine: tuple[RedisEngine, Heard]
) -> None:
    redis_engine, heard = engine
    fanout = redis_engine._fanout
    assert fanout is not None
    # Redis answers nothing while this script runs: the SUBSCRIBE waits for its confirmation.
    busy = asyncio.create_task(
        asyncio.to_thread(
            server.client().eval,
            "local t = redis.call('TIME') repeat local n = redis.call('TIME') "
            "until (n[1] - t[1]) * 1000000 + n[2] - t[2] > 300000 return 1",
            0,
        )
    )
    await asyncio.sleep(0.05)
    listening = asyncio.create_task(redis_engine.listen("x.*"))  # a pattern: no read first
    await until(lambda: bool(fanout._confirmations), what="the SUBSCRIBE sent")
    os.kill(server.pid, signal.SIGKILL)
    await asyncio.wait_for(listening, 5)  # returns: no CancelledError, no connection error
    await asyncio.gather(busy, return_exceptions=True)
    with redis_server(port=server.port):
        await until(lambda: fanout._connected.is_set(), 10, "the fan-out reconnected")
        await until(lambda: redis_engine.available, 10, "the engine's watcher saw Redis back")
        await publish(redis_engine, "x.1", "after")
        await until(lambda: heard.of("x.1") == [(1, b"after")], what="the pattern heard")


async def test_the_fan_out_outlasts_a_history_read_refused_while_redis_is_marked_away(
    server: RedisServer, engine: tuple[RedisEngine, Heard]
) -> None:
    redis_engine, heard = engine
    await heard_from(engine, "c")
    fanout = redis_engine._fanout
    assert fanout is not None
    async with started_engine(server, "fan") as other_node:
        redis_engine.available = False  # as between Redis's return and the watcher's next look
        drop_pub_sub(server)
        await publish(other_node, "c", "m2")
        await asyncio.sleep(0.3)  # the reconnect's history read is refused, and retried
        assert fanout._runner is not None and not fanout._runner.done()
        redis_engine.available = True
        await until(lambda: heard.of("c") == [(1, b"first"), (2, b"m2")], what="the gap")
        await publish(other_node, "c", "m3")
        await until(lambda: heard.of("c")[-1] == (3, b"m3"))
