"""The Redis engine when Redis misbehaves: killed under load (with an append-only file, nothing
acknowledged is lost), paused (the hub says NOT_SERVING and refuses writes, then recovers by
itself), or restarted empty (channel epochs change, so subscribers learn their positions are
void). Each test runs its own redis-server."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentplex.client import Client, HubError
from agentplex.node import HubNode
from tests.support.hubs import fast_settings
from tests.support.redis_server import RedisServer, redis_server
from tests.support.streams import take, until

DURABLE = ["--appendonly", "yes", "--appendfsync", "always"]


def on(server: RedisServer) -> HubNode:
    engine = {"name": "redis", "redis_url": server.url, "redis_timeout": 0.5}
    return HubNode(fast_settings(engine=engine))


async def health(node: HubNode) -> int:
    async with grpc.aio.insecure_channel(node.grpc_address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        return reply.status


async def serving(node: HubNode, expected: bool) -> bool:
    status = health_pb2.HealthCheckResponse
    return await health(node) == (status.SERVING if expected else status.NOT_SERVING)


async def _stored(client: Client, channel: str, expected: int) -> dict[int, bytes]:
    """The channel's history by seq. A read that meets a connection from before the restart
    is refused (UNAVAILABLE: retry later) and read again, as the message says."""
    deadline = time.monotonic() + 15
    while True:
        try:
            page = await client.history(channel, since=0, limit=1000)
            while len(page.envelopes) < expected and page.envelopes:
                last = page.envelopes[-1].position.seq
                more = await client.history(channel, since=last, limit=1000)
                if not more.envelopes:
                    break
                page.envelopes.extend(more.envelopes)
            return {e.position.seq: e.payload for e in page.envelopes}
        except HubError as err:
            if err.code != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


@pytest.fixture
def workdir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="agentplex-aof-") as path:
        yield path


@pytest.mark.slow
async def test_redis_killed_under_publish_load_loses_nothing_acknowledged(workdir: str) -> None:
    with redis_server(workdir=workdir, extra_args=DURABLE) as first:
        async with on(first) as node, Client(node.grpc_address, timeout=2) as client:
            acked: dict[int, bytes] = {}
            refused = 0
            stop = asyncio.Event()

            async def publish_forever() -> None:
                nonlocal refused
                i = 0
                while not stop.is_set():
                    payload = f"m{i}".encode()
                    i += 1
                    try:
                        receipt = await client.publish("load", payload)
                    except HubError as err:
                        assert err.code == grpc.StatusCode.UNAVAILABLE, err
                        refused += 1
                        await asyncio.sleep(0.01)
                        continue
                    acked[receipt.position.seq] = payload

            publisher = asyncio.create_task(publish_forever())
            await until(lambda: _at_least(acked, 300), timeout=20)
            os.kill(first.pid, signal.SIGKILL)
            await until(lambda: serving(node, False), timeout=10)
            count_at_kill = len(acked)
            with redis_server(port=first.port, workdir=workdir, extra_args=DURABLE):
                await until(lambda: serving(node, True), timeout=15)
                await until(lambda: _at_least(acked, count_at_kill + 100), timeout=20)
                stop.set()
                await publisher
                stored = await _stored(client, "load", len(acked))
    assert refused > 0, "publishes while Redis was down must be refused, not accepted"
    missing = {seq: p for seq, p in acked.items() if stored.get(seq) != p}
    assert not missing, f"acknowledged but lost: {sorted(missing)[:10]}"


async def _at_least(acked: dict[int, bytes], count: int) -> bool:
    return len(acked) >= count


@pytest.mark.slow
async def test_redis_paused_means_not_serving_and_refused_writes_then_recovery() -> None:
    with redis_server() as server:
        async with (
            on(server) as node,
            Client(node.grpc_address, timeout=3) as client,
            Client(node.grpc_address) as listener,
        ):
            sub = listener.subscribe("pulse")
            reading = asyncio.create_task(take(sub, 2, timeout=30))
            await asyncio.wait_for(sub.ready.wait(), 5)
            await client.publish("pulse", "before")
            os.kill(server.pid, signal.SIGSTOP)
            try:
                await until(lambda: serving(node, False), timeout=10)
                with pytest.raises(HubError) as refused:
                    await client.publish("pulse", "while paused")
                assert refused.value.code == grpc.StatusCode.UNAVAILABLE
                assert "engine.redis_url" in refused.value.message
                await client.wait_ready(2)  # the hub itself is up and answering
            finally:
                os.kill(server.pid, signal.SIGCONT)
            await until(lambda: serving(node, True), timeout=10)
            await client.publish("pulse", "after")
            received = await reading
            assert [e.payload for e in received] == [b"before", b"after"]
            assert [e.position.seq for e in received] == [1, 2]  # the refused one left no trace


async def test_redis_restarted_empty_changes_epochs_and_subscribers_learn_it() -> None:
    with redis_server() as first:
        async with on(first) as node, Client(node.grpc_address, timeout=3) as client:
            before = (await client.publish("kept", "one")).position
            os.kill(first.pid, signal.SIGKILL)
            await until(lambda: serving(node, False), timeout=10)
            with redis_server(port=first.port):  # the same port, none of the data
                await until(lambda: serving(node, True), timeout=15)
                after = (await client.publish("kept", "two")).position
                assert after.epoch != before.epoch and after.seq == 1
                page = await client.history("kept", since=before)
                assert not page.recovered
                assert [e.payload for e in page.envelopes] == [b"two"]


async def test_after_redis_restarts_no_connection_from_before_fails_a_call() -> None:
    """The pool's connections from before a restart are dropped when Redis is back: once the
    hub serves again, every call succeeds (none meets a dead connection and is refused)."""
    with redis_server() as first:
        async with on(first) as node, Client(node.grpc_address, timeout=3) as client:
            # Many calls at once: the engine's pool holds several connections.
            await asyncio.gather(*(client.publish(f"c{i}", "x") for i in range(20)))
            os.kill(first.pid, signal.SIGKILL)
            await until(lambda: serving(node, False), timeout=10)
            with redis_server(port=first.port):
                await until(lambda: serving(node, True), timeout=15)
                for i in range(20):
                    await client.history(f"c{i}")
                    await client.publish(f"c{i}", "after")
