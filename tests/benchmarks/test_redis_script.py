"""Redis's own time in the publish script, per envelope: what every publish on the Redis engine
costs the one Redis all hub nodes share (a script blocks every other client while it runs).

Against a private redis-server, a `RedisEngine` mirroring to `agentplex:msg:` as it does when
the Redis edge shares the engine's Redis, with a subscriber on the mirror (PUBLISH to nobody
costs less). A round publishes one channel's envelopes one call at a time (`single`), or in
batches of 1,000 (`batched`: the engine sends each as pipelined script calls of
`PUBLISH_CHUNK`). Redis's `INFO commandstats` gives the time its EVALSHA calls took, reset
before every round; the figure is that time per envelope (and per call).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis

from agentplex.edges.envelope_json import json_parts
from agentplex.engine.redis import RedisEngine
from agentplex.engine.redis.engine import PUBLISH_CHUNK
from agentplex.v1 import envelope_pb2
from tests.benchmarks.helpers import report, sized
from tests.support.redis_engine import started_engine
from tests.support.redis_server import RedisServer, find_redis_server, redis_server

pytestmark = pytest.mark.skipif(find_redis_server() is None, reason="no redis-server found")

BATCH = 1000
ROUNDS = 5
_ids = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    """A Redis of this module's own: its statistics are reset every round."""
    with redis_server() as running:
        yield running


def envelopes(count: int) -> list[envelope_pb2.Envelope]:
    """Envelopes as the hub hands them to the engine: id, sender, created_at and sha256 set."""
    out = []
    for _ in range(count):
        env = envelope_pb2.Envelope(
            id=f"bench-{next(_ids)}", channel="bench.script", sender="bench", payload=b"x" * 64
        )
        env.created_at.GetCurrentTime()
        env.sha256 = hashlib.sha256(env.payload).hexdigest()
        out.append(env)
    return out


@asynccontextmanager
async def mirrored_engine(server: RedisServer) -> AsyncIterator[RedisEngine]:
    async with started_engine(server, "script") as engine:
        engine.mirror("agentplex:msg:", json_parts)
        listener = aioredis.Redis(host=server.host, port=server.port)
        pubsub = listener.pubsub()
        await pubsub.psubscribe("agentplex:msg:*")

        async def drain() -> None:
            async for _ in pubsub.listen():
                pass

        draining = asyncio.get_running_loop().create_task(drain())
        try:
            yield engine
        finally:
            draining.cancel()
            await asyncio.gather(draining, return_exceptions=True)
            await pubsub.aclose()
            await listener.aclose()


async def script_time(
    engine: RedisEngine, server: RedisServer, batches: list[list[envelope_pb2.Envelope]]
) -> tuple[int, float]:
    """Publish `batches` one after the other; (EVALSHA calls, their total µs in Redis)."""
    stats = aioredis.Redis(host=server.host, port=server.port)
    try:
        await stats.config_resetstat()
        top = 0
        for batch in batches:
            outcomes = await engine.publish(batch, time.time_ns())
            seqs = [o.seq for o in outcomes]
            if top:
                assert seqs == list(range(top + 1, top + 1 + len(batch)))
            top = seqs[-1]
            assert not any(o.duplicate for o in outcomes)
        evalsha = (await stats.info("commandstats"))["cmdstat_evalsha"]
        return int(evalsha["calls"]), float(evalsha["usec"])
    finally:
        await stats.aclose()


@pytest.mark.benchmark(group="redis-script")
@pytest.mark.parametrize("shape", ["single", "batched"])
def test_publish_script_time_in_redis(
    benchmark: Any, runner: asyncio.Runner, server: RedisServer, shape: str
) -> None:
    count = sized(benchmark, 5000, 200) if shape == "single" else sized(benchmark, 20, 2)
    size = 1 if shape == "single" else BATCH
    calls_per_publish = 1 if shape == "single" else -(-BATCH // PUBLISH_CHUNK)
    measured: list[tuple[int, float]] = []
    context = mirrored_engine(server)
    engine = runner.run(context.__aenter__())
    try:
        runner.run(script_time(engine, server, [envelopes(size) for _ in range(2)]))  # warm-up

        def setup() -> tuple[tuple[list[list[envelope_pb2.Envelope]]], dict[str, Any]]:
            return ([envelopes(size) for _ in range(count)],), {}

        benchmark.pedantic(
            lambda batches: measured.append(runner.run(script_time(engine, server, batches))),
            setup=setup,
            rounds=ROUNDS,
        )
    finally:
        runner.run(context.__aexit__(None, None, None))
    for calls, _ in measured:
        assert calls == count * calls_per_publish  # a batch goes as calls of PUBLISH_CHUNK
    per_envelope = sorted(usec / (count * size) for _, usec in measured)
    per_call = sorted(usec / calls for calls, usec in measured)
    report(
        benchmark,
        f"publish script's time in Redis, {shape} ({size} per publish)",
        envelopes_per_round=count * size,
        script_calls_per_publish=calls_per_publish,
        redis_us_per_envelope_median=round(per_envelope[len(per_envelope) // 2], 2),
        redis_us_per_envelope_best=round(per_envelope[0], 2),
        redis_us_per_call_median=round(per_call[len(per_call) // 2], 2),
    )
