"""`agentplex agent --exec COMMAND`: the simplest real agent. Each task runs COMMAND in a shell
with the task input on stdin; stdout lines stream as progress and stdout is the result; a
non-zero exit fails the task. A cancel from the hub interrupts the command (SIGINT, then
SIGKILL after a grace period)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from typing import Any

from agentplex.cli.common import add_connection, client_of, enum_value, stop_on_signals
from agentplex.client import HubError, TaskContext
from agentplex.v1 import agent_pb2

KILL_GRACE = 5.0


def add_parser(commands: Any) -> None:
    p = commands.add_parser("agent", help="run an agent that executes a command per task")
    add_connection(p)
    p.add_argument("--id", default="", help="stable agent id (default: assigned by the hub)")
    p.add_argument("--name", default="")
    p.add_argument("--kind", default="custom", help="claude_code, cursor, ..., custom")
    p.add_argument("--capabilities", default="", metavar="CAP,...")
    p.add_argument("--max-tasks", type=int, default=1, help="tasks run at the same time")
    p.add_argument("--exec", dest="command", required=True, metavar="COMMAND")
    p.set_defaults(run=run)


class CommandFailed(Exception):
    pass


async def run_command(command: str, task: TaskContext) -> bytes:
    proc = await asyncio.create_subprocess_shell(
        command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "AGENTPLEX_TASK_ID": task.id, "AGENTPLEX_ATTEMPT": str(task.attempt)},
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    output = bytearray()

    async def feed() -> None:
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(task.input.data)
            await proc.stdin.drain()
            proc.stdin.close()

    async def pump() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            output.extend(line)
            await task.progress(line.decode(errors="replace").rstrip("\n"))

    try:
        _, _, stderr = await asyncio.gather(feed(), pump(), proc.stderr.read())
        code = await proc.wait()
    except asyncio.CancelledError:
        await stop(proc)
        raise
    if code != 0:
        tail = stderr.decode(errors="replace").strip()[-500:]
        raise CommandFailed(f"command exited with {code}" + (f": {tail}" if tail else ""))
    return bytes(output)


async def stop(proc: asyncio.subprocess.Process) -> None:
    """SIGINT to the command's process group, SIGKILL if it is still there after a grace."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        await asyncio.wait_for(proc.wait(), KILL_GRACE)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


async def serve(args: argparse.Namespace) -> None:
    card = agent_pb2.AgentCard(
        id=args.id,
        name=args.name or args.id,
        kind=enum_value(agent_pb2.AgentKind, "AGENT_KIND_", args.kind, "--kind"),
        capabilities=[c for c in args.capabilities.split(",") if c],
        max_concurrent_tasks=args.max_tasks,
    )
    async with client_of(args) as client:
        await client.wait_ready()
        async with client.session(card) as session:
            session.on_task(lambda task: run_command(args.command, task))
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
    if args.max_tasks < 1:
        print("agentplex agent: --max-tasks must be at least 1", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(args))
    except ValueError as err:
        print(f"agentplex agent: {err}", file=sys.stderr)
        return 2
    except HubError as err:
        print(f"agentplex agent: {err.code.name}: {err.message}", file=sys.stderr)
        return 1
    return 0
