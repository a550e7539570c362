"""The Redis engine on a private Redis Cluster of three masters, beyond what the engine contract
and the multi-node tests (both also run on the cluster) show: a channel's keys share one slot,
so its scripts run there, while different channels spread over the masters; and a cluster that
cannot be reached fails the start with the setting named."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from agentplex.client import Client
from agentplex.config import EngineSettings
from agentplex.core.channel_log import Retention
from agentplex.engine.redis import RedisEngine
from agentplex.errors import Unavailable
from agentplex.node import HubNode
from agentplex.v1 import agent_pb2, envelope_pb2, task_pb2
from tests.support.hubs import fast_settings
from tests.support.redis_cluster import RedisClusterNodes
from tests.support.redis_server import free_port
from tests.support.streams import until

CHANNELS = [f"room.{i}" for i in range(12)]


def cluster_engine(url: str, prefix: str = "agentplex") -> RedisEngine:
    settings = EngineSettings(name="redis", redis_url=url, redis_cluster=True, redis_prefix=prefix)
    return RedisEngine(Retention(), settings)


@pytest.fixture
async def engine(private_redis_cluster: RedisClusterNodes) -> AsyncIterator[RedisEngine]:
    running = cluster_engine(private_redis_cluster.url, f"spread{time.monotonic_ns()}")
    await running.start(lambda _: None, node="n1")
    yield running
    await running.close()


def where(cluster: RedisClusterNodes, prefix: str) -> dict[str, int]:
    """Every key under `prefix`, and the index of the master that holds it."""
    found: dict[str, int] = {}
    for index, master in enumerate(cluster.masters):
        with master.client() as client:
            for key in client.scan_iter(match=f"{prefix}:*"):
                found[key.decode()] = index
    return found


async def test_a_channels_keys_share_a_master_and_channels_spread_over_all(
    engine: RedisEngine, private_redis_cluster: RedisClusterNodes
) -> None:
    envelopes = [envelope_pb2.Envelope(id=c, channel=c, payload=b"x") for c in CHANNELS]
    await engine.publish(envelopes, time.time_ns())
    await engine.put_agent(agent_pb2.Agent(card=agent_pb2.AgentCard(id="a1")))
    await engine.beat("n1", time.time_ns() + 10**9)
    await engine.put_task(task_pb2.Task(id="t1"))
    await engine.enqueue_task("t1", 0, time.time_ns())
    held = where(private_redis_cluster, engine.keys.prefix)
    masters_of_channels = set()
    for channel in CHANNELS:
        keys = engine.keys.channel(channel)
        assert {held[key] for key in keys} == {held[keys[0]]}, channel
        masters_of_channels.add(held[keys[0]])
    assert masters_of_channels == {0, 1, 2}
    k = engine.keys
    assert len({held[key] for key in (k.agents, k.nodes)}) == 1
    assert len({held[key] for key in (k.tasks, k.queue, k.queued, k.order)}) == 1


async def test_an_unreachable_cluster_fails_the_start_naming_the_setting() -> None:
    engine = cluster_engine(f"redis://:s3cret@127.0.0.1:{free_port()}/0")
    with pytest.raises(Unavailable) as failed:
        await engine.start(lambda _: None)
    await engine.close()
    message = str(failed.value)
    assert "engine.redis_url" in message and "s3cret" not in message


async def test_the_redis_edge_works_on_the_engines_cluster(
    private_redis_cluster: RedisClusterNodes,
) -> None:
    """The edge's leader lock is a key (it follows its slot); mirroring is pub/sub (any node),
    done by the engine's publish script here (the edge uses the engine's Redis)."""
    engine = {"name": "redis", "redis_url": private_redis_cluster.url, "redis_cluster": True}
    edge = {"enabled": True, "prefix": "clustered:"}
    settings = fast_settings(engine={**engine, "redis_prefix": "edge-on-cluster"}, redis_edge=edge)
    async with HubNode(settings) as node, Client(node.grpc_address) as client:
        assert node.redis_edge is not None
        await until(lambda: _ready(node), timeout=15)
        assert node.redis_edge.mirror_in_engine
        listener = redis.asyncio.Redis.from_url(private_redis_cluster.masters[1].url)
        async with listener.pubsub() as pubsub:
            await pubsub.psubscribe("clustered:msg:*")
            await client.publish("mirrored", "across the cluster")
            while True:
                message = await asyncio.wait_for(pubsub.get_message(timeout=5), 10)
                if message and message["type"] == "pmessage":
                    break
        await listener.aclose()
        assert json.loads(message["data"])["channel"] == "mirrored"


async def _ready(node: HubNode) -> bool:
    return node.redis_edge is not None and node.redis_edge.ready
