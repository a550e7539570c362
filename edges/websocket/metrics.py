"""Prometheus metrics at `/metrics` on the WebSocket port, read from the hub when scraped: the
hot paths only bump plain counters, and everything else is counted here, once per scrape."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable
from http import HTTPStatus

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from websockets.http11 import Request, Response

from agentplex.core import tasks as machine
from agentplex.edges.websocket.http import response
from agentplex.errors import HubError
from agentplex.hub import Hub
from agentplex.v1 import agent_pb2

TRANSPORTS = {
    agent_pb2.TRANSPORT_GRPC: "grpc",
    agent_pb2.TRANSPORT_WEBSOCKET: "websocket",
    agent_pb2.TRANSPORT_REDIS: "redis",
}


class _Snapshot(Collector):
    """Families gathered (asynchronously) just before the scrape is rendered."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def _counter(name: str, text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"agentplex_{name}", text, value=value)


async def gather(hub: Hub) -> list[Metric]:
    m = hub.metrics
    families: list[Metric] = [
        _counter("messages_published", "Envelopes accepted on this node.", m.published),
        _counter("messages_duplicate", "Publishes answered from the dedup window.", m.duplicates),
        _counter("messages_delivered", "Envelopes handed to subscribers here.", m.delivered),
        _counter(
            "integrity_failures", "History entries whose sha256 failed.", m.integrity_failures
        ),
        _counter("slow_consumers", "Sessions cut off for falling behind.", m.slow_consumers),
    ]
    connections = GaugeMetricFamily(
        "agentplex_connections", "Sessions with a live connection.", labels=["transport"]
    )
    queued = GaugeMetricFamily(
        "agentplex_session_queue_depth", "Items waiting in session outboxes.", labels=["stat"]
    )
    by_transport: Counter[str] = Counter()
    depths = []
    for session in hub.sessions.all():
        if session.outbox is not None:
            by_transport[TRANSPORTS.get(session.transport, "other")] += 1
            depths.append(len(session.outbox))
    for transport in TRANSPORTS.values():
        connections.add_metric([transport], by_transport[transport])
    queued.add_metric(["sum"], sum(depths))
    queued.add_metric(["max"], max(depths, default=0))
    families += [connections, queued]
    with contextlib.suppress(HubError):  # the engine is unreachable: engine_available says so
        states = Counter(machine.state_name(t.state) for t in await hub.engine.list_tasks())
        tasks = GaugeMetricFamily("agentplex_tasks", "Tasks by state.", labels=["state"])
        for state in sorted(states):
            tasks.add_metric([state], states[state])
        pending = len(await hub.engine.pending_tasks())
        waiting = "Tasks waiting for an agent."
        families += [tasks, GaugeMetricFamily("agentplex_task_queue_depth", waiting, pending)]
    families += [
        GaugeMetricFamily(
            "agentplex_engine_available",
            "1 while the engine reaches its storage.",
            int(hub.engine.available),
        ),
    ]
    routing = hub.tasks.routing
    buckets = [(_bound(b), n) for b, n in routing.cumulative()]
    families.append(
        HistogramMetricFamily(
            "agentplex_routing_seconds",
            "Time to pick an agent for a task.",
            buckets=buckets,
            sum_value=routing.sum,
        )
    )
    return families


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


async def metrics(hub: Hub, request: Request) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(await gather(hub)))
    return response(HTTPStatus.OK, generate_latest(registry), CONTENT_TYPE_LATEST)
