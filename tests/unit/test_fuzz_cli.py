"""Fuzz of the command line's input parsing: `agentplex submit`, `publish`, `tasks`, `history`,
`subscribe` and `agents` with any option values. Each command line either becomes a valid
request or a clean error: argparse's exit 2, or one line on stderr and exit 2 from the
command. The RPC is replaced by one that records the request and finds no hub, so nothing leaves
the process; two subprocess checks at the end run the real command."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any
from unittest import mock

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import example, given, strategies as st

from agentplex.cli import build_parser
from agentplex.cli.common import enum_value
from agentplex.client import Client, HubError
from agentplex.core.limits import Limits
from agentplex.core.tasks import check_submission
from agentplex.core.validation import check_envelope
from agentplex.edges.frames import to_json
from agentplex.errors import InvalidArgument, ResourceExhausted
from agentplex.v1 import agent_pb2, task_pb2
from tests.support.fuzz import FUZZ, numbers_as_text

# What a user may type: numbers in every form, names, blanks and any text ("-5" and "--x" among
# them, which argparse reads as a negative number or an option).
values = (
    numbers_as_text
    | st.sampled_from(["inf", "-inf", "nan", "1e400", "-1e400", "0", "1e9", "claude-code", "-"])
    | st.text(max_size=12)
)
kinds = st.sampled_from(["claude_code", "CURSOR", "gemini-cli", "custom", "unspecified"]) | values
options = {
    "submit": ["--priority", "--deadline", "--max-attempts", "--kind", "--require", "--agent"],
    "publish": ["--content-type", "--header", "--id"],
    "tasks": ["--state", "--limit", "--agent", "--capability"],
    "history": ["--since", "--limit"],
    "subscribe": ["--since", "--count"],
    "agents": ["--kind", "--status", "--capability"],
}
positionals = {"submit": 1, "publish": 2, "tasks": 0, "history": 1, "subscribe": 1, "agents": 0}
PARSER = build_parser()  # built once: argparse parsers are reusable, and slow to build


@st.composite
def command_lines(draw: st.DrawFn, command: str) -> list[str]:
    argv = [command]
    for _ in range(draw(st.integers(0, 4))):
        option = draw(st.sampled_from(options[command]))
        argv += [option, draw(kinds if option in ("--kind", "--state", "--status") else values)]
    argv += draw(st.lists(values, min_size=positionals[command], max_size=positionals[command]))
    return argv


@dataclass
class Ran:
    """What one command line did: its exit code, stderr and the request it would have sent."""

    code: int
    stderr: str
    requests: list[Message]


def run(argv: list[str]) -> Ran:
    """Parse and run `argv` in this process; the hub is unreachable, the request recorded."""
    requests: list[Message] = []

    async def unreachable(
        client: Client, method: Any, request: Message, timeout: Any = None
    ) -> Any:
        requests.append(request)
        raise HubError(grpc.StatusCode.UNAVAILABLE, "no hub in a fuzz test")

    stderr, stdout = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stderr(stderr),
        contextlib.redirect_stdout(stdout),
        mock.patch.object(Client, "_call", unreachable),
        mock.patch.object(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"input on stdin"))),  # '-'
    ):
        try:
            args = PARSER.parse_args([*argv, "--hub", "127.0.0.1:1"])
        except SystemExit as exit_:
            return Ran(int(exit_.code or 0), stderr.getvalue(), requests)
        code = args.run(args)  # any exception but the CLI's own fails the test
    return Ran(code, stderr.getvalue(), requests)


def assert_clean(ran: Ran, command: str) -> None:
    """A clean answer: a usage error (exit 2) ending in `agentplex CMD: error: ...`, or one line
    and exit 2 for a bad value, or exit 1 for the missing hub after a request was made."""
    lines = ran.stderr.strip().splitlines()
    assert lines and lines[-1].startswith(f"agentplex {command}: "), ran.stderr
    if ran.code == 2 and not ran.requests:
        assert lines[-1].startswith(f"agentplex {command}: error: ") or len(lines) == 1
        return
    assert ran.code == 1 and len(lines) == 1 and "cannot reach the hub" in lines[0], ran.stderr
    assert len(ran.requests) == 1


@FUZZ
@given(argv=command_lines("submit"))
@example(argv=["submit", "--deadline", "inf", "x"])  # was OverflowError: a crash line, exit 1
@example(argv=["submit", "--deadline", "nan", "x"])
@example(argv=["submit", "--deadline", "1e12", "x"])  # past what a Timestamp holds
@example(argv=["submit", "--priority", "99999999999", "x"])  # was "Value out of range", no name
@example(argv=["submit", "--max-attempts", "-1", "x"])
@example(argv=["submit", "--kind", "unspecified", "x"])
def test_submit_sends_a_valid_task_or_says_what_is_wrong(argv: list[str]) -> None:
    ran = run(argv)
    assert_clean(ran, "submit")
    if not ran.requests:
        return
    task = ran.requests[0].task  # type: ignore[attr-defined]
    assert to_json(task)  # every transport can carry it, deadline included
    try:
        check_submission(task, Limits(), 10)
    except (InvalidArgument, ResourceExhausted) as err:
        assert err.message.startswith("task"), err.message


@FUZZ
@given(argv=command_lines("publish"))
@example(argv=["publish", "--header", "nokey", "chat", "x"])
@example(argv=["publish", "--header", "=v", "chat", "x"])
@example(argv=["publish", "chat", "\udcff"])  # argv bytes that are not UTF-8
def test_publish_sends_a_valid_envelope_or_says_what_is_wrong(argv: list[str]) -> None:
    ran = run(argv)
    assert_clean(ran, "publish")
    if ran.requests:
        env = ran.requests[0].envelope  # type: ignore[attr-defined]
        assert to_json(env)
        try:
            check_envelope(env, Limits())
        except (InvalidArgument, ResourceExhausted) as err:
            assert err.message.startswith("envelope."), err.message


@FUZZ
@given(argv=st.sampled_from(["tasks", "history", "agents"]).flatmap(command_lines))
@example(argv=["history", "c", "--since", "-1"])  # was "Value out of range: -1", no name
@example(argv=["tasks", "--limit", "4294967296"])
def test_listing_commands_send_a_request_or_say_what_is_wrong(argv: list[str]) -> None:
    ran = run(argv)
    assert_clean(ran, argv[0])
    if ran.requests:
        assert to_json(ran.requests[0])


@FUZZ
@given(argv=command_lines("subscribe"))
def test_subscribe_options_parse_into_range_or_exit_2(argv: list[str]) -> None:
    """Parsed only: a subscription streams, so it is not run here."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            args = PARSER.parse_args(argv)
        except SystemExit as exit_:
            assert exit_.code == 2
            assert stderr.getvalue().splitlines()[-1].startswith("agentplex subscribe: error: ")
            return
    assert args.since is None or 0 <= args.since < 2**64


@pytest.mark.parametrize(
    "argv",
    [
        ["submit", "--priority", "99999999999", "x"],  # each was "Value out of range: N"
        ["submit", "--max-attempts", "-1", "x"],
        ["submit", "--deadline", "nan", "x"],  # was "cannot convert float NaN to integer"
        ["submit", "--deadline", "1e12", "x"],  # was "Timestamp is not valid"
        ["submit", "--deadline", "-5", "x"],
        ["tasks", "--limit", "-1"],
        ["history", "c", "--since", "-1"],
        ["history", "c", "--limit", "4294967296"],
        ["subscribe", "c", "--since", "18446744073709551616"],
    ],
)
def test_a_number_out_of_range_is_refused_naming_its_option(argv: list[str]) -> None:
    ran = run(argv)
    option = next(a for a in argv if a.startswith("--"))
    assert ran.code == 2 and not ran.requests
    assert ran.stderr.splitlines()[-1].startswith(f"agentplex {argv[0]}: error: argument {option}:")


@pytest.mark.parametrize(
    ("enum", "prefix"),
    [
        (agent_pb2.AgentKind, "AGENT_KIND_"),
        (agent_pb2.AgentStatus, "AGENT_STATUS_"),
        (task_pb2.TaskState, "TASK_STATE_"),
    ],
)
@FUZZ
@given(text=st.text() | st.sampled_from(["claude_code", "Gemini-CLI", "working", "offline"]))
def test_enum_names_parse_to_a_value_or_list_the_valid_ones(
    enum: Any, prefix: str, text: str
) -> None:
    try:
        value = enum_value(enum, prefix, text, "--kind")
    except ValueError as err:
        message = str(err)
        assert message.startswith(f"--kind {text!r} is not one of ") and "\n" not in message
        valid = [v.name.removeprefix(prefix).lower() for v in enum.DESCRIPTOR.values if v.number]
        assert message.endswith(", ".join(valid))
        return
    assert value in enum.values()


def test_every_enum_name_parses_back() -> None:
    for name, number in agent_pb2.AgentKind.items():
        friendly = name.removeprefix("AGENT_KIND_").lower()
        assert enum_value(agent_pb2.AgentKind, "AGENT_KIND_", friendly, "--kind") == number
        dashed = friendly.replace("_", "-").upper()
        assert enum_value(agent_pb2.AgentKind, "AGENT_KIND_", dashed, "--kind") == number


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("submit", "--deadline", "inf", "x"), "argument --deadline: inf is not a number"),
        (("submit", "--kind", "robot", "x"), "--kind 'robot' is not one of claude_code"),
    ],
)
def test_a_bad_value_exits_2_with_one_line_naming_the_option(
    args: tuple[str, ...], named: str
) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "agentplex", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "AGENTPLEX_HUB": "127.0.0.1:1"},
    )
    assert out.returncode == 2 and out.stdout == ""
    *usage, last = out.stderr.strip().splitlines()
    assert named in last and last.startswith(f"agentplex {args[0]}: ")
    assert all(line.startswith(("usage: ", " ")) for line in usage)  # argparse's, if any
