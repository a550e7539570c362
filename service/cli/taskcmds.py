"""Task commands: submit, tasks, task show|cancel|input."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agentplex.cli.argtypes import INT32, UINT32, integer, seconds
from agentplex.cli.common import add_common, enum_name, enum_value, json_line, run_client
from agentplex.client import Client, TaskHandle
from agentplex.core.tasks import state_name
from agentplex.v1 import agent_pb2, task_pb2


def add_parsers(commands: Any) -> None:
    p = commands.add_parser("submit", help="submit a task; --wait follows it to its end")
    add_common(p)
    p.add_argument("input", help="the task input; '-' reads standard input")
    p.add_argument("--require", default="", metavar="CAP,...", help="capabilities an agent needs")
    p.add_argument("--kind", action="append", default=[], help="preferred agent kind (repeatable)")
    p.add_argument("--agent", default="", metavar="ID", help="only this agent")
    p.add_argument("--priority", type=integer(INT32), default=0, help="higher runs first")
    p.add_argument("--deadline", type=seconds, metavar="SECONDS", help="fail if not done by then")
    p.add_argument("--max-attempts", type=integer(UINT32), default=0)
    p.add_argument("--idempotency-key", default="", metavar="KEY")
    p.add_argument("--wait", action="store_true", help="stream events, exit with the result")
    p.set_defaults(run=run_client(submit))

    p = commands.add_parser("tasks", help="list tasks")
    add_common(p)
    p.add_argument("--state", action="append", default=[], help="e.g. working, completed")
    p.add_argument("--agent", default="")
    p.add_argument("--capability", default="")
    p.add_argument("--limit", type=integer(UINT32), default=0)
    p.set_defaults(run=run_client(list_tasks))

    p = commands.add_parser("task", help="show, cancel or answer one task")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = sub.add_parser("show", help="print a task")
    add_common(show)
    show.add_argument("id")
    show.set_defaults(run=run_client(show_task))
    cancel = sub.add_parser("cancel", help="cancel a task")
    add_common(cancel)
    cancel.add_argument("id")
    cancel.add_argument("--reason", default="")
    cancel.set_defaults(run=run_client(cancel_task))
    answer = sub.add_parser("input", help="answer a task that is INPUT_REQUIRED")
    add_common(answer)
    answer.add_argument("id")
    answer.add_argument("text")
    answer.set_defaults(run=run_client(give_input))


def _line(task: task_pb2.Task) -> str:
    agent = task.assigned_agent_id or "-"
    caps = ",".join(task.required_capabilities) or "-"
    return f"{task.id}\t{state_name(task.state).lower()}\t{agent}\tattempt {task.attempt}\t{caps}"


def _print_task(task: task_pb2.Task, as_json: bool) -> None:
    if as_json:
        print(json_line(task))
        return
    print(_line(task))
    if task.status_message:
        print(f"  status: {task.status_message}")
    if task.input_prompt:
        print(f"  asks: {task.input_prompt}")
    if task.HasField("result"):
        print(f"  result: {task.result.data.decode(errors='replace')}")
    if task.HasField("error"):
        print(f"  error: {task.error.code} {task.error.message}")


async def submit(client: Client, args: argparse.Namespace) -> int:
    data = sys.stdin.buffer.read() if args.input == "-" else args.input
    kinds = [enum_value(agent_pb2.AgentKind, "AGENT_KIND_", k, "--kind") for k in args.kind]
    handle = await client.submit(
        data,
        require=[c for c in args.require.split(",") if c],
        kinds=kinds,
        agent=args.agent,
        priority=args.priority,
        deadline=args.deadline,
        max_attempts=args.max_attempts,
        idempotency_key=args.idempotency_key,
    )
    if not args.wait:
        _print_task(handle.task, args.json)
        return 0
    return await follow(handle, args.json)


async def follow(handle: TaskHandle, as_json: bool) -> int:
    """Print events until the task ends; the result goes to stdout, the exit code says how.
    Events are replayed from the first one, so nothing that happened before the watch started
    (a fast agent's progress) is missed."""
    async for event in handle.events(after=1):
        if as_json:
            print(json_line(event), flush=True)
            continue
        if event.type == task_pb2.TASK_EVENT_TYPE_SNAPSHOT:
            continue  # the replayed events tell the same story, step by step
        kind = enum_name(task_pb2.TaskEventType, "TASK_EVENT_TYPE_", event.type)
        detail = event.message or state_name(event.task.state).lower()
        print(f"[{event.number}] {kind}: {detail}", file=sys.stderr, flush=True)
    task = handle.task
    if task.state == task_pb2.TASK_STATE_COMPLETED:
        if not as_json:
            sys.stdout.buffer.write(task.result.data)
            if task.result.data and not task.result.data.endswith(b"\n"):
                sys.stdout.write("\n")
        return 0
    if not as_json:
        message = task.error.message or task.status_message
        print(f"task {task.id} {state_name(task.state).lower()}: {message}", file=sys.stderr)
    return 1


async def list_tasks(client: Client, args: argparse.Namespace) -> int:
    states = [enum_value(task_pb2.TaskState, "TASK_STATE_", s, "--state") for s in args.state]
    found = await client.list_tasks(
        states=states, agent=args.agent, capability=args.capability, limit=args.limit
    )
    for task in found:
        print(json_line(task) if args.json else _line(task))
    if not found and not args.json:
        print("no tasks", file=sys.stderr)
    return 0


async def show_task(client: Client, args: argparse.Namespace) -> int:
    _print_task(await client.get_task(args.id), args.json)
    return 0


async def cancel_task(client: Client, args: argparse.Namespace) -> int:
    _print_task(await client.cancel_task(args.id, args.reason), args.json)
    return 0


async def give_input(client: Client, args: argparse.Namespace) -> int:
    _print_task(await client.provide_input(args.id, args.text), args.json)
    return 0


__all__ = ["add_parsers", "follow"]
