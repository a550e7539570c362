"""`agentplex agent`: connect a CLI runner to the hub. Each assigned task runs the kind's real
CLI (`claude -p ...`, `codex exec ...`, ...) or, for `--kind custom`, the `--exec` command in a
shell, in a working directory of its own; see agentplex.runners. With `--exec` alone the agent
is the simplest one there is: the command gets the task input on stdin and its stdout is the
result. Settings: agents.<kind>.* (cli_path, max_concurrent_tasks, sandbox, timeout,
env_allow, extra_args)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path
from typing import Any

from agentplex.cli.common import add_connection, client_of, stop_on_signals
from agentplex.client import HubError
from agentplex.config import KindSettings, load_settings
from agentplex.runners import KINDS, CliRunner
from agentplex.runners.kinds import CUSTOM


def add_parser(commands: Any) -> None:
    p = commands.add_parser("agent", help="run a CLI agent (Claude Code, Codex, ... or a command)")
    add_connection(p)
    p.add_argument("--id", default="", help="stable agent id (default: assigned by the hub)")
    p.add_argument("--name", default="")
    p.add_argument("--kind", default=CUSTOM, help=", ".join([*KINDS, CUSTOM]))
    p.add_argument("--capabilities", default="", metavar="CAP,...")
    p.add_argument(
        "--max-tasks",
        type=int,
        default=None,
        help="tasks run at the same time (default: agents.<kind>.max_concurrent_tasks)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="each task works in a git worktree of DIR (a copy when DIR is no git repository)",
    )
    p.add_argument(
        "--exec",
        dest="command",
        default="",
        metavar="TEMPLATE",
        help="for --kind custom: a shell command; {prompt} and {workdir} are replaced, "
        "without {prompt} the prompt arrives on stdin",
    )
    p.add_argument(
        "--env-allow",
        default="",
        metavar="NAME,...",
        help="environment variables the CLI gets beyond the scrubbed minimum "
        "(added to agents.<kind>.env_allow)",
    )
    p.add_argument("--config", default=None, help="a settings file (TOML) for agents.<kind>")
    p.set_defaults(run=run)


def runner_of(args: argparse.Namespace) -> CliRunner:
    """The runner the command line asks for; ValueError names the bad option."""
    if args.workdir is not None and not args.workdir.is_dir():
        raise ValueError(f"--workdir {args.workdir} is not a directory")
    kinds = load_settings(None, args.config).agents.kinds
    settings = kinds.get(args.kind, KindSettings())
    if args.env_allow:
        allowed = ",".join(filter(None, (settings.env_allow, args.env_allow)))
        settings = dataclasses.replace(settings, env_allow=allowed)
    # Refuses an unknown --kind, and --kind custom without --exec.
    runner = CliRunner(args.kind, settings, template=args.command, workdir=args.workdir)
    if args.kind != CUSTOM and args.command:
        raise ValueError(f"--exec is for --kind custom; {args.kind} runs its own CLI")
    return runner


async def serve(args: argparse.Namespace, runner: CliRunner) -> None:
    version = await runner.version()
    card = runner.card(
        agent_id=args.id,
        name=args.name,
        capabilities=[c for c in args.capabilities.split(",") if c],
        max_tasks=args.max_tasks or 0,
        version=version,
    )
    if args.kind != CUSTOM and not version:
        print(f"agentplex agent: warning: {runner.label} did not report a version", flush=True)
    async with client_of(args) as client:
        await client.wait_ready()
        async with client.session(card) as session:
            session.on_task(runner)
            print(f"agent {session.agent_id} connected to {client.address}", flush=True)
            stop_event = stop_on_signals()
            closed = asyncio.create_task(session.closed_event.wait())
            await asyncio.wait(
                [asyncio.create_task(stop_event.wait()), closed],
                return_when=asyncio.FIRST_COMPLETED,
            )
            if closed.done() and isinstance(session.failure, HubError):
                raise session.failure


def run(args: argparse.Namespace) -> int:
    if args.max_tasks is not None and args.max_tasks < 1:
        print("agentplex agent: --max-tasks must be at least 1", file=sys.stderr)
        return 2
    try:
        runner = runner_of(args)
        asyncio.run(serve(args, runner))
    except ValueError as err:
        print(f"agentplex agent: {err}", file=sys.stderr)
        return 2
    except HubError as err:
        print(f"agentplex agent: {err.code.name}: {err.message}", file=sys.stderr)
        return 1
    return 0
