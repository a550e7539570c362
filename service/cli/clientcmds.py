"""Client commands: publish, subscribe, history, agents. Each talks to a hub over gRPC."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agentplex.cli.argtypes import UINT32, UINT64, integer
from agentplex.cli.common import add_common, enum_name, enum_value, json_line, run_client
from agentplex.client import Client
from agentplex.core.globmatch import is_pattern
from agentplex.v1 import agent_pb2, envelope_pb2


def add_parsers(commands: Any) -> None:
    p = commands.add_parser("publish", help="publish DATA on CHANNEL and print its position")
    add_common(p)
    p.add_argument("channel")
    p.add_argument("data", help="the payload; '-' reads standard input")
    p.add_argument("--content-type", default="")
    p.add_argument("--header", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--id", default="", help="envelope id (a retry with the same id is stored once)")
    p.set_defaults(run=run_client(publish))

    p = commands.add_parser(
        "subscribe", help="print envelopes on channels or patterns as they come"
    )
    add_common(p)
    p.add_argument("channels", nargs="+", metavar="PATTERN")
    p.add_argument(
        "--since", type=integer(UINT64), help="replay named channels after this seq first"
    )
    p.add_argument("--count", type=int, help="exit after this many envelopes")
    p.set_defaults(run=run_client(subscribe))

    p = commands.add_parser("history", help="print a channel's stored envelopes")
    add_common(p)
    p.add_argument("channel")
    p.add_argument("--since", type=integer(UINT64), help="only envelopes after this seq")
    p.add_argument(
        "--limit",
        type=integer(UINT32),
        default=0,
        help="at most this many (default: the hub's page)",
    )
    p.set_defaults(run=run_client(history))

    p = commands.add_parser(
        "agents", help="list agents: id, kind, CLI version, status, load (active/max), capabilities"
    )
    add_common(p)
    p.add_argument("--kind", action="append", default=[], help="e.g. claude_code, custom")
    p.add_argument("--capability", action="append", default=[])
    p.add_argument("--status", action="append", default=[], help="e.g. online, offline")
    p.set_defaults(run=run_client(agents))


def _text(env: envelope_pb2.Envelope) -> str:
    try:
        body = env.payload.decode()
    except UnicodeDecodeError:
        body = f"<{len(env.payload)} bytes {env.content_type}>"
    return f"{env.channel} #{env.position.seq} {env.sender}: {body}"


async def publish(client: Client, args: argparse.Namespace) -> int:
    data = sys.stdin.buffer.read() if args.data == "-" else args.data
    headers = {}
    for item in args.header:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--header {item!r} must look like KEY=VALUE")
        headers[key] = value
    result = await client.publish(
        args.channel, data, content_type=args.content_type, headers=headers, id=args.id
    )
    if args.json:
        print(json_line(result))
    else:
        note = " (duplicate id: already stored)" if result.duplicate else ""
        print(f"{result.channel} #{result.position.seq} epoch {result.position.epoch}{note}")
    return 0


async def subscribe(client: Client, args: argparse.Namespace) -> int:
    since = {}
    if args.since is not None:
        since = {c: args.since for c in args.channels if not is_pattern(c)}
    received = 0
    if args.count == 0:
        return 0
    async for env in client.subscribe(*args.channels, since=since):
        print(json_line(env) if args.json else _text(env), flush=True)
        received += 1
        if args.count is not None and received >= args.count:
            break
    return 0


async def history(client: Client, args: argparse.Namespace) -> int:
    page = await client.history(args.channel, since=args.since, limit=args.limit)
    for env in page.envelopes:
        print(json_line(env) if args.json else _text(env))
    if not page.recovered and args.since is not None and not args.json:
        print(f"(history before #{args.since} is no longer complete)", file=sys.stderr)
    return 0


async def agents(client: Client, args: argparse.Namespace) -> int:
    kinds = [enum_value(agent_pb2.AgentKind, "AGENT_KIND_", k, "--kind") for k in args.kind]
    statuses = [
        enum_value(agent_pb2.AgentStatus, "AGENT_STATUS_", s, "--status") for s in args.status
    ]
    found = await client.agents(kinds=kinds, capabilities=args.capability, statuses=statuses)
    for agent in found:
        if args.json:
            print(json_line(agent))
            continue
        card = agent.card
        kind = enum_name(agent_pb2.AgentKind, "AGENT_KIND_", card.kind)
        status = enum_name(agent_pb2.AgentStatus, "AGENT_STATUS_", agent.status)
        caps = ",".join(card.capabilities) or "-"
        load = f"{agent.active_tasks}/{card.max_concurrent_tasks}"
        version = card.labels.get("cli_version") or "-"
        print(f"{card.id}\t{kind}\t{version}\t{status}\t{load}\t{caps}")
    if not found and not args.json:
        print("no agents registered", file=sys.stderr)
    return 0
