"""One-way throughput over gRPC to an `agentplex serve` subprocess. Target: batched > 100,000
msgs/s.

A publisher sends N messages on one channel and a subscriber (`Client.subscribe`) counts them
until all N arrived; a benchmark round is that whole transfer, and msgs/s = N / round time
(median and best round in extra_info). Every round checks that each message arrived exactly once
and in the hub's order (seq contiguous), and for batches in the publisher's order too.

- batched, two ways, BATCH envelopes a batch (built before the round, outside the timing):
  - `rpc`: `Client.publish_batch`, one call in flight at a time, so the hub idles while each
    response travels back and the next batch comes in (that publisher's round trip is in the
    figure);
  - `session`: `Session.publish_batch` on one session stream, IN_FLIGHT batches in flight (a
    sliding window), as a publisher that streams does; the stream keeps them in order, and the
    hub is kept busy: the hub's own batched throughput;
- single: `Client.publish` per message, pipelined: WINDOW publishes in flight at any time (a
  sliding window: WINDOW workers gathered, each publishing the next message when its previous
  one is answered).

The hub runs in its own process (its own core); publisher and subscriber share the test process.
The CPU each process used during the rounds is reported (`hub_cpu_util`, `test_cpu_util`: CPU
seconds per wall second, the hub's including its gRPC poller thread; `*_cpu_us_per_msg`) and
`bottleneck` names the busier one. The first round of each test is a warm-up that also fills the
channel's history and dedup window (10,000 entries), so the timed rounds see a steady-state hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import psutil
import pytest

from agentplex.client import Client, envelope
from agentplex.v1 import envelope_pb2
from tests.benchmarks.helpers import (
    CpuMeter,
    engine_hub,
    engine_of,
    report,
    round_seconds,
    sized,
)

BATCHED_N = 50_000
BATCH = 1000  # the hub's default limits.max_batch
IN_FLIGHT = 3  # batches a streaming publisher keeps in flight
SINGLE_N = 5_000
WINDOW = 100
ROUNDS = 5
PAYLOAD = 64  # bytes per message


@pytest.fixture(scope="module", params=["memory", "redis"])
def hub(request: pytest.FixtureRequest) -> Iterator[tuple[psutil.Process, str]]:
    with engine_hub(request) as running:
        yield running


class Sink:
    """The subscriber's side: collects one round's positions and payloads."""

    def __init__(self, client: Client, channel: str) -> None:
        self.subscription = client.subscribe(channel)
        self.expected = 0
        self.seqs: list[int] = []
        self.payloads: list[bytes] = []
        self.done = asyncio.Event()
        self.last_seq = 0
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await asyncio.wait_for(self.subscription.ready.wait(), 10)

    def arm(self, expected: int) -> None:
        self.expected, self.seqs, self.payloads = expected, [], []
        self.done.clear()

    async def _read(self) -> None:
        seqs, payloads = self.seqs, self.payloads
        async for env in self.subscription:
            if seqs is not self.seqs:
                seqs, payloads = self.seqs, self.payloads
            seqs.append(env.position.seq)
            payloads.append(env.payload)
            if len(seqs) == self.expected:
                self.done.set()

    async def wait(self, timeout: float) -> None:
        await asyncio.wait_for(self.done.wait(), timeout)

    async def stop(self) -> None:
        self.subscription.cancel()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    def check(self, sent: list[bytes], *, ordered: bool) -> None:
        """Exactly the messages sent, once each, in seq order without gaps (also across
        rounds: nothing extra arrived in between)."""
        assert len(self.seqs) == len(sent)
        first = self.seqs[0]
        if self.last_seq:
            assert first == self.last_seq + 1
        assert self.seqs == list(range(first, first + len(sent)))
        self.last_seq = self.seqs[-1]
        if ordered:
            assert self.payloads == sent
        else:
            assert sorted(self.payloads) == sorted(sent)


class Transfer:
    """Publisher, subscriber and CPU meter for one throughput test; `run` is one benchmark
    round. The first round is not measured when it is pytest-benchmark's warm-up."""

    def __init__(
        self, address: str, hub_proc: psutil.Process, channel: str, *, warmup: bool
    ) -> None:
        self.address = address
        self.channel = channel
        self.meter = CpuMeter({"hub": hub_proc, "test": psutil.Process()})
        self.round_seconds: list[float] = []
        self.unchecked: list[bytes] | None = None
        self.publisher: Client
        self.subscriber: Client
        self.sink: Sink
        self._warmup = warmup
        self._rounds = 0

    async def open(self) -> None:
        # gRPC aio channels belong to the loop they are made on: make them on the runner's.
        self.publisher = Client(self.address, timeout=30)
        self.subscriber = Client(self.address)
        self.sink = Sink(self.subscriber, self.channel)
        await self.publisher.wait_ready()
        await self.sink.start()

    async def close(self) -> None:
        await self.sink.stop()
        await self.publisher.close()
        await self.subscriber.close()

    def payloads(self, count: int) -> list[bytes]:
        """Distinct payloads of PAYLOAD bytes, tagged with the round."""
        tag = f"r{self._rounds}:".encode()
        return [tag + str(i).encode().rjust(PAYLOAD - len(tag), b".") for i in range(count)]

    async def run(self, send: Callable[[], Awaitable[object]], count: int) -> None:
        """Arm the sink, send, wait until all `count` messages arrived."""
        self.sink.arm(count)
        measured = not (self._warmup and self._rounds == 0)
        self._rounds += 1
        meter = self.meter.measure() if measured else contextlib.nullcontext()
        with meter:
            start = time.perf_counter()
            await send()
            await self.sink.wait(60)
            elapsed = time.perf_counter() - start
        if measured:
            self.round_seconds.append(elapsed)

    def check(self, sent: list[bytes], *, ordered: bool) -> None:
        self.sink.check(sent, ordered=ordered)
        self.unchecked = None

    def figures(self, benchmark: Any, count: int) -> dict[str, Any]:
        rounds = round_seconds(benchmark)
        median = rounds["median"] if rounds else statistics.median(self.round_seconds)
        best = rounds["min"] if rounds else min(self.round_seconds)
        return {
            "messages_per_round": count,
            "payload_bytes": PAYLOAD,
            "msgs_per_s_median": round(count / median),
            "msgs_per_s_best": round(count / best),
            **self.meter.figures(count * len(self.round_seconds)),
        }


async def in_flight(
    publish: Callable[[list[envelope_pb2.Envelope]], Awaitable[object]],
    batches: list[list[envelope_pb2.Envelope]],
    window: int,
) -> None:
    """Publish `batches` in order, `window` of them in flight at any time."""
    pending: deque[asyncio.Future[object]] = deque()
    for batch in batches:
        pending.append(asyncio.ensure_future(publish(batch)))
        if len(pending) == window:
            await pending.popleft()
    await asyncio.gather(*pending)


@pytest.mark.benchmark(group="throughput")
@pytest.mark.parametrize("path", ["rpc", "session"])
def test_throughput_batched(
    benchmark: Any,
    runner: asyncio.Runner,
    hub: tuple[psutil.Process, str],
    request: pytest.FixtureRequest,
    path: str,
) -> None:
    hub_proc, address = hub
    channel = f"bench.throughput.batched.{path}"
    transfer = Transfer(address, hub_proc, channel, warmup=benchmark.enabled)
    count = sized(benchmark, BATCHED_N, 5 * BATCH)
    window = IN_FLIGHT if path == "session" else 1

    def setup() -> tuple[tuple[list[list[envelope_pb2.Envelope]], list[bytes]], dict[str, Any]]:
        sent = transfer.unchecked = transfer.payloads(count)
        envs = [envelope(transfer.channel, p) for p in sent]
        return ([envs[i : i + BATCH] for i in range(0, count, BATCH)], sent), {}

    runner.run(transfer.open())
    publisher = transfer.publisher.session() if path == "session" else transfer.publisher

    async def send(batches: list[list[envelope_pb2.Envelope]]) -> None:
        await in_flight(publisher.publish_batch, batches, window)

    try:
        if path == "session":
            runner.run(publisher.connect())
        benchmark.pedantic(
            lambda batches, sent: runner.run(transfer.run(lambda: send(batches), len(sent))),
            setup=setup,
            teardown=lambda batches, sent: transfer.check(sent, ordered=True),
            rounds=ROUNDS,
            warmup_rounds=1,
        )
        if transfer.unchecked is not None:  # --benchmark-disable: no teardown ran
            transfer.check(transfer.unchecked, ordered=True)
    finally:
        if path == "session":
            runner.run(publisher.close())
        runner.run(transfer.close())
    how = f"on a session, {window} in flight" if path == "session" else "PublishBatch, 1 in flight"
    report(
        benchmark,
        f"throughput batched ({BATCH} a batch, {how}), {engine_of(request)} engine",
        batch=BATCH,
        in_flight=window,
        target_msgs_per_s=100_000,
        **transfer.figures(benchmark, count),
    )


@pytest.mark.benchmark(group="throughput")
def test_throughput_single(
    benchmark: Any,
    runner: asyncio.Runner,
    hub: tuple[psutil.Process, str],
    request: pytest.FixtureRequest,
) -> None:
    hub_proc, address = hub
    transfer = Transfer(address, hub_proc, "bench.throughput.single", warmup=benchmark.enabled)
    count = sized(benchmark, SINGLE_N, 5 * WINDOW)

    def setup() -> tuple[tuple[list[bytes]], dict[str, Any]]:
        transfer.unchecked = transfer.payloads(count)
        return (transfer.unchecked,), {}

    async def send(sent: list[bytes]) -> None:
        publish, channel = transfer.publisher.publish, transfer.channel
        pending = iter(sent)

        async def worker() -> None:  # WINDOW workers: a sliding window of publishes in flight
            for payload in pending:
                await publish(channel, payload)

        await asyncio.gather(*(worker() for _ in range(WINDOW)))

    runner.run(transfer.open())
    try:
        benchmark.pedantic(
            lambda sent: runner.run(transfer.run(lambda: send(sent), len(sent))),
            setup=setup,
            teardown=lambda sent: transfer.check(sent, ordered=False),
            rounds=ROUNDS,
            warmup_rounds=1,
        )
        if transfer.unchecked is not None:
            transfer.check(transfer.unchecked, ordered=False)
    finally:
        runner.run(transfer.close())
    report(
        benchmark,
        f"throughput single publishes ({WINDOW} in flight), {engine_of(request)} engine",
        window=WINDOW,
        **transfer.figures(benchmark, count),
    )
