"""WebSocket edge: publish-to-deliver round trip and one-way throughput, each beside a raw
`websockets` echo server measured in the same run (both servers in their own process, the
clients in the test process; protobuf frames, permessage-deflate negotiated as browsers do).

- round trip: a session publishes one envelope, another session subscribed to the channel
  receives it; the next publish waits for it. Raw: a message sent to the echo server and back.
- throughput: one session publishes BATCH envelopes per frame (the next when the receipt of the
  last is in), the other counts N deliveries; raw: N messages sent to the echo server while its
  echoes are counted.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from agentplex.v1 import envelope_pb2, session_service_pb2 as ss
from tests.benchmarks.helpers import latency_figures, percentile, report, sized
from tests.support.hubs import serve_process

SAMPLES = 200
ROUNDS = 5
N = 20_000
BATCH = 1000
PROTO = "agentplex.v1.proto"
ECHO = """
import asyncio
from websockets.asyncio.server import serve
async def echo(ws):
    async for message in ws:
        await ws.send(message)
async def main():
    async with serve(echo, "127.0.0.1", 0, max_size=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
asyncio.run(main())
"""


@pytest.fixture(scope="module")
def urls() -> Iterator[tuple[str, str]]:
    """(the hub's /v1/connect URL, the echo server's URL)."""
    echo = subprocess.Popen([sys.executable, "-c", ECHO], stdout=subprocess.PIPE, text=True)
    try:
        assert echo.stdout is not None
        port = int(echo.stdout.readline())
        idle = {"AGENTPLEX_SESSION__HEARTBEAT_TIMEOUT": "600"}
        with serve_process("--log-level", "WARNING", env=idle) as (hub, _):
            yield hub.ws_url, f"ws://127.0.0.1:{port}"  # type: ignore[attr-defined]
    finally:
        echo.kill()
        echo.wait(5)


async def session(url: str, subscribe: str = "") -> ClientConnection:
    ws = await connect(url, subprotocols=[PROTO], max_size=None)  # type: ignore[list-item]
    await ws.send(ss.ConnectRequest(ref="h", hello=ss.Hello()).SerializeToString())
    await answer(ws, "h")
    if subscribe:
        request = ss.ConnectRequest(ref="s", subscribe=ss.Subscribe(channels=[subscribe]))
        await ws.send(request.SerializeToString())
        await answer(ws, "s")
    return ws


async def answer(ws: ClientConnection, ref: str) -> None:
    while ss.ConnectResponse.FromString(await ws.recv()).ref != ref:  # type: ignore[arg-type]
        pass


async def deliveries(ws: ClientConnection) -> list[ss.Delivery]:
    while True:
        frame = ss.ConnectResponse.FromString(await ws.recv())  # type: ignore[arg-type]
        if frame.HasField("deliveries"):
            return list(frame.deliveries.deliveries)


def publish_frame(channel: str, payloads: list[bytes], ref: str = "") -> bytes:
    envelopes = [envelope_pb2.Envelope(channel=channel, payload=p) for p in payloads]
    request = ss.ConnectRequest(ref=ref, publish=ss.Publish(envelopes=envelopes))
    return request.SerializeToString()


async def hub_round_trips(url: str, count: int) -> list[float]:
    publisher, subscriber = await session(url), await session(url, "bench.ws.rtt")
    samples = []
    try:
        for i in range(count):
            started = time.perf_counter_ns()
            await publisher.send(publish_frame("bench.ws.rtt", [str(i).encode()]))
            got = await deliveries(subscriber)
            samples.append((time.perf_counter_ns() - started) / 1000)
            assert got[0].envelope.payload == str(i).encode()
    finally:
        await publisher.close()
        await subscriber.close()
    return samples


async def echo_round_trips(url: str, count: int) -> list[float]:
    samples = []
    async with connect(url) as ws:
        for i in range(count):
            started = time.perf_counter_ns()
            await ws.send(str(i).encode())
            assert await ws.recv() == str(i).encode()
            samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


@pytest.mark.benchmark(group="websocket")
def test_websocket_round_trip_beside_raw_echo(
    benchmark: Any, runner: asyncio.Runner, urls: tuple[str, str]
) -> None:
    hub_url, echo_url = urls
    hub: list[float] = []
    raw: list[float] = []

    def one_round() -> None:  # interleaved, so both see the same machine load
        hub.extend(runner.run(hub_round_trips(hub_url, SAMPLES)))
        raw.extend(runner.run(echo_round_trips(echo_url, SAMPLES)))

    benchmark.pedantic(one_round, rounds=ROUNDS)
    hub_p50, raw_p50 = percentile(sorted(hub), 50), percentile(sorted(raw), 50)
    report(
        benchmark,
        "WebSocket publish->deliver beside raw websockets echo",
        samples=len(hub),
        hub_over_raw_p50=round(hub_p50 / raw_p50, 2),
        **latency_figures(hub, "hub_"),
        **latency_figures(raw, "raw_echo_"),
    )


async def hub_transfer(url: str, count: int) -> float:
    publisher, subscriber = await session(url), await session(url, "bench.ws.flow")
    try:
        started = time.perf_counter()
        received = 0

        async def count_all() -> None:
            nonlocal received
            while received < count:
                received += len(await deliveries(subscriber))

        counting = asyncio.create_task(count_all())
        for first in range(0, count, BATCH):  # one batch in flight: its receipt frees the next
            payloads = [b"%08d" % i for i in range(first, min(count, first + BATCH))]
            await publisher.send(publish_frame("bench.ws.flow", payloads, ref=str(first)))
            await answer(publisher, str(first))
        await asyncio.wait_for(counting, 60)
        return count / (time.perf_counter() - started)
    finally:
        await publisher.close()
        await subscriber.close()


async def echo_transfer(url: str, count: int) -> float:
    async with connect(url) as ws:
        started = time.perf_counter()

        async def count_all() -> None:
            for _ in range(count):
                await ws.recv()

        counting = asyncio.create_task(count_all())
        for i in range(count):
            await ws.send(b"%08d" % i)
        await asyncio.wait_for(counting, 60)
        return count / (time.perf_counter() - started)


@pytest.mark.benchmark(group="websocket")
def test_websocket_throughput_beside_raw_echo(
    benchmark: Any, runner: asyncio.Runner, urls: tuple[str, str]
) -> None:
    hub_url, echo_url = urls
    count = sized(benchmark, N, 2 * BATCH)
    hub: list[float] = []
    raw: list[float] = []

    def one_round() -> None:
        hub.append(runner.run(hub_transfer(hub_url, count)))
        raw.append(runner.run(echo_transfer(echo_url, count)))

    benchmark.pedantic(one_round, rounds=ROUNDS)
    report(
        benchmark,
        f"WebSocket throughput ({BATCH} per publish frame) beside raw websockets echo",
        messages_per_round=count,
        hub_msgs_per_s_median=round(sorted(hub)[len(hub) // 2]),
        raw_echo_msgs_per_s_median=round(sorted(raw)[len(raw) // 2]),
    )
