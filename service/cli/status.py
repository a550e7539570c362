"""`agentplex status`: the hub at a glance. Nodes, agents by status and kind, tasks by state,
and rates from two samples `--interval` seconds apart: messages published and delivered per
second on the node answering (its own counters), tasks completed per second hub-wide (the
change in the COMPLETED count). Tables in a terminal, one JSON object with --json."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.table import Table
from rich.text import Text

from agentplex.cli.common import add_common, enum_name, run_client
from agentplex.client import Client
from agentplex.v1 import agent_pb2, registry_service_pb2 as rs, task_pb2


def add_parser(commands: Any) -> None:
    p = commands.add_parser("status", help="nodes, agents, tasks and rates at a glance")
    add_common(p)
    p.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="seconds between the two samples the rates come from (0: no rates; default 1)",
    )
    p.set_defaults(run=run_client(status))


# The enums shown, with the prefix their friendly names drop.
KIND, STATUS, STATE = (
    (agent_pb2.AgentKind, "AGENT_KIND_"),
    (agent_pb2.AgentStatus, "AGENT_STATUS_"),
    (task_pb2.TaskState, "TASK_STATE_"),
)


def _name(enum: tuple[Any, str], value: int) -> str:
    return enum_name(*enum, value)


def _names(enum: tuple[Any, str]) -> list[str]:
    return [_name(enum, value) for value in enum[0].values() if value]


def _iso(ts: Timestamp) -> str:
    return str(ts.ToDatetime().isoformat(timespec="seconds")) + "Z"


def _completed(answer: rs.GetHubStatusResponse) -> int:
    return sum(c.count for c in answer.tasks if c.state == task_pb2.TASK_STATE_COMPLETED)


def rates(first: rs.GetHubStatusResponse, second: rs.GetHubStatusResponse) -> dict[str, Any]:
    """Per-second rates between two answers of one node, over the time between them."""
    elapsed = (second.time.ToNanoseconds() - first.time.ToNanoseconds()) / 1e9

    def per_second(delta: int) -> float:
        return round(max(delta, 0) / elapsed, 3) if elapsed > 0 else 0.0

    a, b = first.counters, second.counters
    return {
        "node": second.node,
        "interval_seconds": round(elapsed, 3),
        "messages_published_per_second": per_second(b.messages_published - a.messages_published),
        "messages_delivered_per_second": per_second(b.messages_delivered - a.messages_delivered),
        "tasks_completed_per_second": per_second(_completed(second) - _completed(first)),
    }


def report(
    answer: rs.GetHubStatusResponse,
    agents: list[agent_pb2.Agent],
    sampled: dict[str, Any] | None,
) -> dict[str, Any]:
    """What `status` shows, as plain data (the --json object)."""
    statuses = Counter(_name(STATUS, a.status) for a in agents)
    kinds = Counter(_name(KIND, a.card.kind) for a in agents)
    states = Counter({_name(STATE, c.state): c.count for c in answer.tasks})
    per_node = Counter(a.node for a in agents)
    c = answer.counters
    return {
        "node": answer.node,
        "engine": answer.engine,
        "uptime_seconds": round(answer.uptime.ToNanoseconds() / 1e9, 3),
        "nodes": [
            {"id": n.id, "lease_expires_at": _iso(n.expires_at), "agents": per_node[n.id]}
            for n in answer.nodes
        ],
        "agents": {
            "total": len(agents),
            "by_status": {s: statuses[s] for s in _names(STATUS)},
            "by_kind": {k: kinds[k] for k in _names(KIND)},
            "list": [
                {
                    "id": a.card.id,
                    "name": a.card.name,
                    "kind": _name(KIND, a.card.kind),
                    "status": _name(STATUS, a.status),
                    "node": a.node,
                    "active_tasks": a.active_tasks,
                    "max_tasks": a.card.max_concurrent_tasks,
                }
                for a in agents
            ],
        },
        "tasks": {
            "total": sum(states.values()),
            "by_state": {s: states[s] for s in _names(STATE)},
        },
        "counters": {
            "messages_published": c.messages_published,
            "messages_duplicate": c.messages_duplicate,
            "messages_delivered": c.messages_delivered,
            "integrity_failures": c.integrity_failures,
            "slow_consumers": c.slow_consumers,
        },
        "rates": sampled,
    }


def _listed(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items() if n) or "none"


def render(data: dict[str, Any], console: Console) -> None:
    """Tables for a person; names come from clients, so they are shown as text, not markup."""
    console.print(
        Text(
            f"engine {data['engine']}; answered by {data['node']}, up {data['uptime_seconds']:.0f}s"
        )
    )
    nodes = Table("node", "lease expires", "agents", title="Nodes", title_justify="left")
    for n in data["nodes"]:
        nodes.add_row(Text(n["id"]), n["lease_expires_at"], str(n["agents"]))
    console.print(nodes)

    agents = data["agents"]
    table = Table(title=f"Agents ({agents['total']})", title_justify="left")
    for column in ("id", "name", "kind", "status", "node", "tasks"):
        table.add_column(column, no_wrap=column in ("id", "node"))
    for a in agents["list"]:
        load = f"{a['active_tasks']}/{a['max_tasks']}"
        table.add_row(Text(a["id"]), Text(a["name"]), a["kind"], a["status"], Text(a["node"]), load)
    console.print(table)

    summary = Table("", "", show_header=False, title="At a glance", title_justify="left")
    summary.add_row("agents by status", _listed(agents["by_status"]))
    summary.add_row("agents by kind", _listed(agents["by_kind"]))
    summary.add_row(f"tasks ({data['tasks']['total']})", _listed(data["tasks"]["by_state"]))
    if data["rates"] is not None:
        r = data["rates"]
        over = f"per second over {r['interval_seconds']:g}s"
        summary.add_row(
            Text(f"messages on {r['node']}"),
            Text(
                f"{r['messages_published_per_second']:g} published, "
                f"{r['messages_delivered_per_second']:g} delivered {over}"
            ),
        )
        summary.add_row("tasks completed", f"{r['tasks_completed_per_second']:g} {over}")
    console.print(summary)


async def status(client: Client, args: argparse.Namespace) -> int:
    if args.interval < 0:
        raise ValueError(f"--interval must be 0 or more, got {args.interval:g}")
    first = await client.hub_status()
    agents = await client.agents()
    sampled = None
    if args.interval:
        await asyncio.sleep(args.interval)
        second = await client.hub_status()
        sampled, first = rates(first, second), second
    data = report(first, agents, sampled)
    if args.json:
        print(json.dumps(data, separators=(",", ":")))
    else:
        render(data, Console())
    return 0
