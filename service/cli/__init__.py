"""The `agentplex` command: `serve` runs a hub; the other commands are clients of one."""

from __future__ import annotations

import argparse
import sys

from agentplex import __version__
from agentplex.cli import admincmds, agent, clientcmds, serve, status, taskcmds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentplex", description="A coordination hub for software agents."
    )
    parser.add_argument("--version", action="version", version=f"agentplex {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_parser(commands)
    clientcmds.add_parsers(commands)
    taskcmds.add_parsers(commands)
    agent.add_parser(commands)
    admincmds.add_parsers(commands)
    status.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as err:  # the last line of defence: one readable line, non-zero exit
        print(f"agentplex: error: {err}", file=sys.stderr)
        return 1
