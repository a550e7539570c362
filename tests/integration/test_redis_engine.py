"""What only the Redis engine has: its keys (hash-tagged, under the prefix), entries altered
inside Redis (never delivered as good data), and a clear refusal to start without Redis."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from agentplex.client import Client
from agentplex.engine.redis import RedisEngine
from agentplex.node import HubNode
from tests.support.hubs import fast_settings
from tests.support.redis_server import RedisServer, free_port
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
