"""`agentplex serve`: run a hub node until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from typing import Any

from agentplex import audit, logs
from agentplex.cli.common import stop_on_signals
from agentplex.config import ConfigError, load_settings
from agentplex.config.show import masked_url
from agentplex.errors import HubError
from agentplex.node import HubNode


def add_parser(commands: Any) -> None:
    p = commands.add_parser("serve", help="run a hub node")
    p.add_argument("--host", help="address to bind (default 127.0.0.1; server.host)")
    p.add_argument("--grpc-port", type=int, help="gRPC port, 0 picks a free one (default 50051)")
    p.add_argument("--ws-port", type=int, help="WebSocket port (default 8765)")
    p.add_argument("--engine", choices=["memory", "redis"], help="state engine (default memory)")
    p.add_argument("--redis-url", help="Redis URL for the redis engine")
    p.add_argument(
        "--redis-edge",
        action="store_true",
        default=None,
        help="serve the Redis edge (redis_edge.enabled)",
    )
    p.add_argument("--redis-edge-url", help="Redis for the edge (default: the engine's)")
    p.add_argument("--env", choices=["development", "staging", "production"])
    p.add_argument("--config", help="a settings file (TOML) layered over the defaults")
    p.add_argument(
        "--log-level", help="DEBUG, INFO, WARNING or ERROR (default INFO; logging.level)"
    )
    p.set_defaults(run=run)


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    server = {
        key: value
        for key, value in (
            ("host", args.host),
            ("grpc_port", args.grpc_port),
            ("ws_port", args.ws_port),
        )
        if value is not None
    }
    engine = {
        key: value
        for key, value in (("name", args.engine), ("redis_url", args.redis_url))
        if value is not None
    }
    redis_edge = {
        key: value
        for key, value in (("enabled", args.redis_edge), ("url", args.redis_edge_url))
        if value is not None
    }
    logs = {"level": args.log_level} if args.log_level is not None else {}
    return {"server": server, "engine": engine, "redis_edge": redis_edge, "logging": logs}


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.env, args.config, _overrides(args))
    except ConfigError as err:
        print(f"agentplex serve: {err}", file=sys.stderr)
        return 2
    logs.configure(settings.logging, logs.secret_values(settings))
    try:
        audit.configure(settings.audit)
    except OSError as err:
        print(f"agentplex serve: audit.file: {err}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(settings))
    except (OSError, HubError) as err:
        print(f"agentplex serve: {err}", file=sys.stderr)
        return 1
    return 0


async def _serve(settings: Any) -> None:
    node = HubNode(settings)
    await node.start()
    # The hub allocates many small acyclic objects per message (history entries, frames);
    # collecting the young generation less often, and never scanning what exists at start,
    # keeps the garbage collector off the publish path.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    stop = stop_on_signals()
    print(
        f"agentplex {settings.env} hub {node.hub.node} on engine {node.hub.engine.name}\n"
        f"  grpc  {node.grpc_address}\n"
        f"  ws    {node.ws_url}/v1/connect",
        flush=True,
    )
    if settings.engine.name == "redis":
        print(f"  engine {masked_url(settings.engine.redis_url)}", flush=True)
    if node.redis_edge is not None:
        print(f"  redis {node.redis_edge.url} prefix {node.redis_edge.names.prefix}", flush=True)
    await stop.wait()
    print("agentplex: shutting down", flush=True)
    await node.stop()
