"""Publish-to-deliver round trip over gRPC. Target: median < 1 ms.

One subscriber and one publisher on separate gRPC channels, two ways:
- calls: `Client.subscribe` (a MessagingService.Subscribe stream) and `Client.publish` (a
  unary Publish, whose every call opens an HTTP/2 stream);
- sessions: two agent sessions (SessionService.Connect streams), the publisher's publish
  frame answered by a receipt, the subscriber's deliveries on its own stream: how agents talk.
A sample is the time from the publish call to the subscriber's iterator yielding that envelope;
the next publish starts only after it arrived (no pipelining). Each benchmark round takes
SAMPLES samples; the percentiles (p50/p95/p99/max over all rounds) are in extra_info and in the
summary.

Two hubs: an `agentplex serve` subprocess (the hub has its own core: the realistic figure) and an
in-process `HubNode` sharing the test's event loop with both clients. For scale, the figures also
carry the p50 of a bare gRPC unary call (Health.Check) to the same hub, the floor any unary
publish pays in grpc.aio on this machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentplex.client import Client
from agentplex.client.session import SessionSubscription
from agentplex.node import HubNode
from agentplex.v1 import envelope_pb2
from tests.benchmarks.helpers import (
    engine_hub,
    engine_of,
    latency_figures,
    percentile,
    report,
    serve_settings,
)
from tests.benchmarks.test_redis_edge import redis_probe

SAMPLES = 200  # per round
ROUNDS = 10
CHANNEL = "bench.latency"


@pytest.fixture(scope="module", params=["memory", "redis"])
def hub(request: pytest.FixtureRequest) -> Iterator[tuple[psutil.Process, str]]:
    with engine_hub(request) as running:
        yield running


Publish = Callable[[str, bytes], Awaitable[envelope_pb2.PublishResult]]


class Probe:
    """A publisher and a subscriber of one channel, with the samples they took."""

    def __init__(
        self,
        publisher: Client,
        publish: Publish,
        deliveries: AsyncIterable[envelope_pb2.Envelope],
        last_seq: int,
    ) -> None:
        self.publisher = publisher
        self.publish = publish
        self.arrivals: asyncio.Queue[tuple[int, envelope_pb2.Envelope]] = asyncio.Queue()
        self.samples_us: list[float] = []
        self.acks_us: list[float] = []
        self.sent = 0
        self.last_seq = last_seq
        self._reader = asyncio.get_running_loop().create_task(self._read(deliveries))

    async def _read(self, deliveries: AsyncIterable[envelope_pb2.Envelope]) -> None:
        async for env in deliveries:
            self.arrivals.put_nowait((time.perf_counter_ns(), env))

    async def stop(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)

    async def sample(self, count: int) -> None:
        """`count` sequential publish -> delivery round trips, checked one by one."""
        publish, arrivals = self.publish, self.arrivals
        for _ in range(count):
            payload = str(self.sent).encode()
            self.sent += 1
            start = time.perf_counter_ns()
            result = await publish(CHANNEL, payload)
            acked = time.perf_counter_ns()
            arrived, env = await asyncio.wait_for(arrivals.get(), 10)
            # The very envelope we published, the next one on the channel, nothing else.
            assert env.payload == payload
            assert env.position.seq == result.position.seq == self.last_seq + 1
            self.last_seq = env.position.seq
            self.samples_us.append((arrived - start) / 1000)
            self.acks_us.append((acked - start) / 1000)

    async def unary_floor_us(self, count: int = 200) -> float:
        """p50 of a bare unary gRPC call (Health.Check) on the publisher's channel."""
        check = health_pb2_grpc.HealthStub(self.publisher.channel).Check
        request = health_pb2.HealthCheckRequest()
        samples = []
        for _ in range(count):
            start = time.perf_counter_ns()
            await check(request)
            samples.append((time.perf_counter_ns() - start) / 1000)
        return percentile(sorted(samples), 50)


@asynccontextmanager
async def probe_of(address: str, token: str = "") -> AsyncIterator[Probe]:
    """Unary publishes, a Subscribe stream."""
    async with (
        Client(address, token=token) as publisher,
        Client(address, token=token) as subscriber,
    ):
        await publisher.wait_ready()
        await subscriber.wait_ready()
        subscription = subscriber.subscribe(CHANNEL)
        probe = Probe(publisher, publisher.publish, subscription, 0)
        try:
            await asyncio.wait_for(subscription.ready.wait(), 10)
            probe.last_seq = subscription.states[0].position.seq
            yield probe
        finally:
            subscription.cancel()
            await probe.stop()


async def _envelopes(subscription: SessionSubscription) -> AsyncIterator[envelope_pb2.Envelope]:
    async for message in subscription:
        yield message.envelope


@asynccontextmanager
async def session_probe_of(address: str) -> AsyncIterator[Probe]:
    """Publish frames on one agent session, deliveries on another's stream."""
    async with (
        Client(address) as publisher,
        Client(address) as subscriber,
        publisher.session() as sender,
        subscriber.session() as receiver,
    ):
        subscription = await receiver.subscribe(CHANNEL)
        probe = Probe(
            publisher, sender.publish, _envelopes(subscription), subscription.states[0].position.seq
        )
        try:
            yield probe
        finally:
            await probe.stop()


def run_latency(
    benchmark: Any, runner: asyncio.Runner, probe: Probe, where: str, **extra: Any
) -> None:
    floor = runner.run(probe.unary_floor_us())
    runner.run(probe.sample(SAMPLES))  # warm-up: connections, caches, first-call costs
    probe.samples_us.clear()
    probe.acks_us.clear()
    benchmark.pedantic(lambda: runner.run(probe.sample(SAMPLES)), rounds=ROUNDS)
    assert len(probe.samples_us) == SAMPLES * (ROUNDS if benchmark.enabled else 1)
    report(
        benchmark,
        f"publish->deliver latency, hub {where}",
        samples=len(probe.samples_us),
        **latency_figures(probe.samples_us),
        publish_ack_p50_us=round(percentile(sorted(probe.acks_us), 50), 1),
        grpc_unary_floor_p50_us=round(floor, 1),
        target_p50_us=1000,
        **extra,
    )


@pytest.mark.benchmark(group="latency")
@pytest.mark.parametrize("path", ["calls", "sessions"])
def test_latency_hub_subprocess(
    benchmark: Any,
    runner: asyncio.Runner,
    hub: tuple[psutil.Process, str],
    request: pytest.FixtureRequest,
    path: str,
) -> None:
    engine = engine_of(request)
    where = f"in a subprocess, {engine} engine"
    extra = {}
    if path == "sessions":
        where += ", agent sessions"
    elif engine == "redis":  # for scale: one hop through the same Redis, measured now
        extra["raw_redis_pubsub_p50_us"] = runner.run(raw_pubsub_p50_us(request))
    stack = AsyncExitStack()
    try:
        probe_for = probe_of if path == "calls" else session_probe_of
        probe = runner.run(stack.enter_async_context(probe_for(hub[1])))
        run_latency(benchmark, runner, probe, where, **extra)
    finally:
        runner.run(stack.aclose())


async def raw_pubsub_p50_us(request: pytest.FixtureRequest) -> float:
    """Median PUBLISH -> SUBSCRIBE-r round trip on the private redis-server."""
    async with AsyncExitStack() as stack:
        server = request.getfixturevalue("private_redis")
        probe = await redis_probe(stack, server, "raw", "")
        await probe.sample(SAMPLES)
        probe.samples_us.clear()
        await probe.sample(SAMPLES)
        return round(percentile(sorted(probe.samples_us), 50), 1)


@pytest.mark.benchmark(group="latency")
def test_latency_hub_in_process(benchmark: Any, runner: asyncio.Runner) -> None:
    stack = AsyncExitStack()
    try:
        node = runner.run(stack.enter_async_context(HubNode(serve_settings())))
        probe = runner.run(stack.enter_async_context(probe_of(node.grpc_address)))
        run_latency(benchmark, runner, probe, "in-process (same event loop)")
    finally:
        runner.run(stack.aclose())
