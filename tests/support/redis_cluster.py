"""Start a private Redis Cluster of three masters for a test session, and stop it after.

Each master is a `redis_server` of its own (free port, own temporary folder holding its
`nodes.conf`), so, as there, nothing ever touches a Redis the tests did not start. The slots are
split with CLUSTER ADDSLOTSRANGE and the nodes introduced with CLUSTER MEET through redis-py, so
no `redis-cli` is needed. It is ready in about two seconds: a master that just started holds
its cluster state at fail that long.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import redis

from tests.support.redis_server import RedisServer, free_port, redis_server

SLOTS = 16384
READY_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class RedisClusterNodes:
    """A running private cluster: its masters, each serving one contiguous range of slots."""

    masters: tuple[RedisServer, ...]

    @property
    def url(self) -> str:
        """The URL of one master: a cluster client learns the others from it."""
        return self.masters[0].url


def _slot_ranges(count: int) -> list[tuple[int, int]]:
    bounds = [SLOTS * i // count for i in range(count + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(count)]


def _all_met(client: redis.Redis, count: int) -> bool:
    """The node knows `count` nodes, each past its handshake and linked."""
    nodes: dict[str, dict[str, Any]] = client.cluster("NODES")
    linked = [n for n in nodes.values() if n["connected"] and "handshake" not in n["flags"]]
    return len(linked) == count


def _state_ok(client: redis.Redis) -> bool:
    info: dict[str, str] = client.cluster("INFO")
    return info["cluster_state"] == "ok"


def _wait(clients: list[redis.Redis], done: Callable[[redis.Redis], bool], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not all(done(client) for client in clients):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the private Redis Cluster did not {what} in {READY_TIMEOUT}s")
        time.sleep(0.02)


def _form(masters: list[RedisServer], bus_ports: list[int]) -> None:
    """Introduce the nodes first, then give them slots. In that order no node ever sees masters
    with slots it cannot reach yet, which would count as being in a minority partition and hold
    the cluster down for a rejoin delay (up to the node timeout) after it is whole."""
    clients = [server.client() for server in masters]
    try:
        # Distinct config epochs up front spare the cluster resolving a collision. Every node
        # takes its own before any MEET: a node that already knows another refuses one.
        for epoch, client in enumerate(clients, start=1):
            client.cluster("SET-CONFIG-EPOCH", epoch)
        for client, server in zip(clients, masters, strict=True):
            for other, bus in zip(masters, bus_ports, strict=True):
                if other is not server:  # everyone meets everyone: no waiting for gossip
                    client.cluster("MEET", other.host, other.port, bus)
        _wait(clients, lambda client: _all_met(client, len(masters)), "meet")
        for client, (first, last) in zip(clients, _slot_ranges(len(masters)), strict=True):
            client.cluster("ADDSLOTSRANGE", first, last)
        _wait(clients, _state_ok, "reach cluster_state:ok")
    finally:
        for client in clients:
            client.close()


@contextmanager
def redis_cluster(masters: int = 3) -> Iterator[RedisClusterNodes]:
    """Run a private cluster of `masters` masters (no replicas) until the block ends. Each
    node's cluster bus gets a free port of its own: by default it is the client port + 10000,
    which may be taken, or past 65535."""
    bus_ports = [free_port() for _ in range(masters)]
    with ExitStack() as stack:
        servers = [
            stack.enter_context(
                redis_server(extra_args=["--cluster-enabled", "yes", "--cluster-port", str(bus)])
            )
            for bus in bus_ports
        ]
        _form(servers, bus_ports)
        yield RedisClusterNodes(tuple(servers))
