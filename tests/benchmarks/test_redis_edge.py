"""Latency through the Redis edge, beside the raw Redis pub/sub round trip of the same run.

Against a private redis-server and an `agentplex serve --redis-edge` subprocess. A sample is
the time from a send to a Redis subscriber holding the message; the next send starts only after
it arrived. Three paths:
- raw: PUBLISH to a plain channel, a SUBSCRIBE-r receives it (the floor: one hop through Redis);
- edge: PUBLISH to `agentplex:pub:<channel>`, the hub accepts it and mirrors it, a subscriber of
  `agentplex:msg:<channel>` receives the JSON envelope (two hops through Redis, one through the
  hub); target: within 2x raw, though two hops through Redis are already about 2x one;
- grpc: a gRPC publish, received by a subscriber of `agentplex:msg:<channel>`;
- relay: PUBLISH to `relay:pub:<channel>`, a bare Python relay (tests/support/redis_relay.py,
  raw asyncio and hiredis, its own process) PUBLISHes it on `relay:msg:<channel>`, where a
  subscriber receives it: the edge's two hops through Redis and one through a Python process,
  with none of the hub's work. Its p50 is the floor of the edge's on this machine;
  `edge_over_relay_p50` is what the hub adds on top.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
import redis.asyncio as aioredis

from agentplex.client import Client
from tests.benchmarks.helpers import latency_figures, percentile, report
from tests.support.hubs import serve_process
from tests.support.redis_server import RedisServer, find_redis_server, redis_server

pytestmark = pytest.mark.skipif(find_redis_server() is None, reason="no redis-server found")

SAMPLES = 200  # per round
PREFIXES = ("relay:pub:", "relay:msg:")  # the bare relay's in and out
ROUNDS = 10


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server() as running:
        yield running


@pytest.fixture(scope="module")
def relay(server: RedisServer) -> Iterator[None]:
    """The bare relay from `relay:pub:*` to `relay:msg:*` on `server`."""
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.redis_relay",
            server.host,
            str(server.port),
            *PREFIXES,
        ],
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None and process.stdout.readline() == "ready\n"
            yield
        finally:
            process.kill()


@pytest.fixture(scope="module", params=["memory", "redis"])
def hub_address(server: RedisServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A hub with the edge on `server`, its engine in memory or on that same Redis."""
    engine = ["--engine", "redis", "--redis-url", server.url] if request.param == "redis" else []
    with serve_process(
        "--redis-edge", "--redis-edge-url", server.url, "--log-level", "WARNING", *engine
    ) as (_, address):
        yield address


class Probe:
    """Sends one message at a time and times its arrival at a Redis subscriber."""

    def __init__(self, send: Callable[[bytes], Awaitable[Any]], pubsub: Any, raw: bool) -> None:
        self.send = send
        self.pubsub = pubsub
        self.raw = raw
        self.arrivals: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self.samples_us: list[float] = []
        self.sent = 0
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for message in self.pubsub.listen():
            if message["type"] in ("message", "pmessage"):
                self.arrivals.put_nowait((time.perf_counter_ns(), message["data"]))

    async def sample(self, count: int) -> None:
        for _ in range(count):
            payload = str(self.sent).encode()
            self.sent += 1
            start = time.perf_counter_ns()
            await self.send(payload)
            arrived, data = await asyncio.wait_for(self.arrivals.get(), 10)
            got = data if self.raw else json.loads(data)["payload"]
            assert got == (payload if self.raw else base64.b64encode(payload).decode())
            self.samples_us.append((arrived - start) / 1000)

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


async def redis_probe(stack: AsyncExitStack, server: RedisServer, path: str, hub: str) -> Probe:
    publisher = await stack.enter_async_context(aioredis.Redis(host=server.host, port=server.port))
    listener = await stack.enter_async_context(aioredis.Redis(host=server.host, port=server.port))
    pubsub = await stack.enter_async_context(listener.pubsub())
    channel = f"bench.{path}"
    if path in ("raw", "relay"):
        into, out = (
            (channel, channel) if path == "raw" else (PREFIXES[0] + channel, PREFIXES[1] + channel)
        )
        await pubsub.subscribe(out)

        async def send(payload: bytes) -> Any:
            return await publisher.publish(into, payload)

    else:
        await pubsub.subscribe(f"agentplex:msg:{channel}")
        if path == "edge":
            await _wait_for_edge(publisher)

            async def send(payload: bytes) -> Any:
                return await publisher.publish(f"agentplex:pub:{channel}", payload)

        else:
            client = await stack.enter_async_context(Client(hub))

            async def send(payload: bytes) -> Any:
                return await client.publish(channel, payload)

    probe = Probe(send, pubsub, raw=path in ("raw", "relay"))
    stack.push_async_callback(probe.close)
    return probe


async def _wait_for_edge(redis: aioredis.Redis, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not (await redis.get("agentplex:edge:leader") and await redis.pubsub_numpat() >= 2):
        assert time.monotonic() < deadline, "the Redis edge did not start"
        await asyncio.sleep(0.02)


@pytest.mark.benchmark(group="redis-edge")
def test_redis_edge_latency(
    benchmark: Any,
    runner: asyncio.Runner,
    server: RedisServer,
    hub_address: str,
    relay: None,
    request: pytest.FixtureRequest,
) -> None:
    stack = AsyncExitStack()
    try:
        probes = {
            path: runner.run(redis_probe(stack, server, path, hub_address))
            for path in ("raw", "relay", "edge", "grpc")
        }
        for probe in probes.values():
            runner.run(probe.sample(SAMPLES))  # warm-up
            probe.samples_us.clear()

        def one_round() -> None:
            for probe in probes.values():  # interleaved, so all see the same machine load
                runner.run(probe.sample(SAMPLES))

        benchmark.pedantic(one_round, rounds=ROUNDS)
        figures: dict[str, Any] = {}
        for path, probe in probes.items():
            figures.update(latency_figures(probe.samples_us, f"{path}_"))
        raw = percentile(sorted(probes["raw"].samples_us), 50)
        edge = percentile(sorted(probes["edge"].samples_us), 50)
        floor = percentile(sorted(probes["relay"].samples_us), 50)
        report(
            benchmark,
            "Redis edge: pub -> hub -> msg round trip beside raw Redis pub/sub, "
            f"{request.node.callspec.params['hub_address']} engine",
            samples=len(probes["raw"].samples_us),
            edge_over_raw_p50=round(edge / raw, 2),
            target_edge_over_raw=2.0,
            relay_over_raw_p50=round(floor / raw, 2),
            edge_over_relay_p50=round(edge / floor, 2),
            **figures,
        )
    finally:
        runner.run(stack.aclose())
