"""What every client command shares: the --hub/--json options, running a coroutine against a
hub with one-line errors, JSON lines and enum parsing."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from agentplex.client import Client, HubError, Tls
from agentplex.client.client import default_hub
from agentplex.client.tasks import TaskFailed


def add_common(p: argparse.ArgumentParser) -> None:
    add_connection(p)
    p.add_argument("--json", action="store_true", help="one JSON object per line")


def add_connection(p: argparse.ArgumentParser) -> None:
    """How to reach the hub: address, token and TLS."""
    p.add_argument(
        "--hub",
        default=None,
        help="hub address HOST:PORT (default $AGENTPLEX_HUB or 127.0.0.1:50051)",
    )
    p.add_argument("--token", default=None, help="bearer token (default $AGENTPLEX_TOKEN)")
    p.add_argument(
        "--tls",
        action="store_true",
        help="connect over TLS (implied by --tls-ca; default $AGENTPLEX_TLS_CA)",
    )
    p.add_argument("--tls-ca", default=None, help="CA file to trust for the hub's certificate")
    p.add_argument("--tls-cert", default=None, help="client certificate, for mutual TLS")
    p.add_argument("--tls-key", default=None, help="client certificate's key, for mutual TLS")


def client_of(args: argparse.Namespace) -> Client:
    """A client of the hub the command line (or AGENTPLEX_HUB, AGENTPLEX_TOKEN,
    AGENTPLEX_TLS_CA) names."""
    ca = args.tls_ca or os.environ.get("AGENTPLEX_TLS_CA", "")
    tls = None
    if args.tls or ca or args.tls_cert:
        tls = Tls(ca_file=ca, cert_file=args.tls_cert or "", key_file=args.tls_key or "")
    return Client(args.hub or default_hub(), token=args.token, tls=tls)


def run_client(
    command: Callable[[Client, argparse.Namespace], Coroutine[Any, Any, int]],
) -> Callable[[argparse.Namespace], int]:
    """Run `command` with a client of the hub; hub errors become one line and exit 1, bad
    arguments exit 2."""

    def run(args: argparse.Namespace) -> int:
        address = args.hub or default_hub()
        name = " ".join(filter(None, (args.command, getattr(args, "action", None))))

        async def go() -> int:
            async with client_of(args) as client:
                return await command(client, args)

        try:
            return asyncio.run(go())
        except HubError as err:
            if err.code == grpc.StatusCode.UNAVAILABLE:
                message = f"cannot reach the hub at {address} (--hub, AGENTPLEX_HUB): {err.message}"
            else:
                message = f"{err.code.name}: {err.message}"
            print(f"agentplex {name}: {message}", file=sys.stderr)
            return 1
        except TaskFailed as err:
            print(f"agentplex {name}: {err}", file=sys.stderr)
            return 1
        except ValueError as err:
            print(f"agentplex {name}: {err}", file=sys.stderr)
            return 2

    return run


def json_line(message: Message) -> str:
    return json.dumps(json_format.MessageToDict(message), separators=(",", ":"))


def enum_name(enum: Any, prefix: str, value: int) -> str:
    """`claude_code` for AGENT_KIND_CLAUDE_CODE: the friendly name `enum_value` reads back."""
    return str(enum.Name(value)).removeprefix(prefix).lower()


def enum_value(enum: Any, prefix: str, value: str, option: str) -> Any:
    """A protobuf enum value from a friendly name (`claude_code` for AGENT_KIND_CLAUDE_CODE)."""
    name = prefix + value.upper().replace("-", "_")
    try:
        return enum.Value(name)
    except ValueError:
        valid = ", ".join(
            n.removeprefix(prefix).lower()
            for n in enum.DESCRIPTOR.values_by_name
            if "UNSPECIFIED" not in n
        )
        raise ValueError(f"{option} {value!r} is not one of {valid}") from None


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM: long-running commands stop cleanly on either."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
