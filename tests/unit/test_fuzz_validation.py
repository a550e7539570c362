"""Fuzz of the checks at the door: names, ids, envelopes, agent cards and tasks with any value
protobuf can carry (unicode, control characters, empty, very long, unknown enum numbers, times
JSON cannot write) either pass or are refused with InvalidArgument or ResourceExhausted naming
the field. What passes can be written as canonical JSON, so every transport can carry it."""

from __future__ import annotations

import re
from collections.abc import Callable

from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import example, given, strategies as st

from agentplex.core import validation as v
from agentplex.core.limits import Limits
from agentplex.core.tasks import check_submission
from agentplex.edges.frames import to_json
from agentplex.errors import InvalidArgument, ResourceExhausted
from agentplex.v1 import agent_pb2, envelope_pb2, task_pb2
from tests.support.fuzz import FUZZ, long_text, messages

SMALL = Limits(
    max_payload_bytes=10,
    max_headers=2,
    max_header_bytes=20,
    max_id_length=8,
    max_capabilities=2,
    max_labels=2,
    max_text_length=5,
)
limits = st.sampled_from([Limits(), SMALL])
CHANNEL = re.compile(r"[A-Za-z0-9_.:-]{1,200}")
ID_CHARS = "abcXYZ019_.:-"
any_text = st.text() | long_text
names = st.text(ID_CHARS, min_size=1, max_size=210) | any_text
low, high = v.TIMESTAMP_SECONDS
valid_times = st.builds(Timestamp, seconds=st.integers(low, high), nanos=st.integers(0, 10**9 - 1))


def verdict(check: Callable[[], object], field: str) -> str | None:
    """None when `check` passes; else the refusal's message, which must name `field`."""
    try:
        check()
    except (InvalidArgument, ResourceExhausted) as err:
        assert err.message.startswith(field), f"{err.message!r} does not name {field!r}"
        return err.message
    return None


@FUZZ
@given(name=names)
@example(name="a\n")
@example(name="\u0663")  # a digit, but not an ASCII one
def test_channel_names_pass_only_when_valid(name: str) -> None:
    message = verdict(lambda: v.check_channel(name, "publish.channel"), "publish.channel")
    assert (message is None) == bool(CHANNEL.fullmatch(name))


@FUZZ
@given(pattern=names | st.text("ab*?[]^\\", max_size=20))
def test_subscriptions_pass_or_name_the_field(pattern: str) -> None:
    if verdict(lambda: v.check_subscription(pattern, "channels[0]"), "channels[0]") is None:
        assert 1 <= len(pattern) <= 200 and pattern.isascii() and pattern.isprintable()
        assert " " not in pattern


@FUZZ
@given(value=names | st.just(""), limits=limits, required=st.booleans())
def test_ids_pass_only_when_valid(value: str, limits: Limits, required: bool) -> None:
    message = verdict(lambda: v.check_id(value, "task.id", limits, required=required), "task.id")
    valid = (value == "" and not required) or (
        len(value) <= limits.max_id_length and re.fullmatch(r"[A-Za-z0-9_.:-]+", value) is not None
    )
    assert (message is None) == valid


@st.composite
def envelopes(draw: st.DrawFn) -> envelope_pb2.Envelope:
    """Any envelope, its names valid often enough that the later checks are reached too."""
    env: envelope_pb2.Envelope = draw(messages(envelope_pb2.Envelope))
    env.channel = draw(st.just(env.channel) | st.text(ID_CHARS, min_size=1, max_size=12))
    env.id = draw(st.just(env.id) | st.text(ID_CHARS, max_size=8))
    env.reply_to = draw(st.just(env.reply_to) | st.just(""))
    if draw(st.booleans()):
        env.created_at.CopyFrom(draw(valid_times))
    return env


@FUZZ
@given(env=envelopes(), limits=limits, index=st.none() | st.integers(0, 999))
@example(
    env=envelope_pb2.Envelope(channel="c", created_at=Timestamp(seconds=2**62)),
    limits=Limits(),
    index=None,
)
@example(
    env=envelope_pb2.Envelope(channel="c", created_at=Timestamp(seconds=1, nanos=-1)),
    limits=Limits(),
    index=3,
)
def test_envelopes_pass_or_name_the_field(
    env: envelope_pb2.Envelope, limits: Limits, index: int | None
) -> None:
    field = "envelope." if index is None else f"envelopes[{index}]."
    if verdict(lambda: v.check_envelope(env, limits, index), field) is None:
        assert CHANNEL.fullmatch(env.channel) and len(env.payload) <= limits.max_payload_bytes
        assert to_json(env)  # a JSON subscriber and the Redis mirror can be sent it


def test_a_time_json_cannot_write_is_refused_naming_it() -> None:
    env = envelope_pb2.Envelope(channel="c", created_at=Timestamp(seconds=253_402_300_800))
    message = verdict(lambda: v.check_envelope(env, Limits()), "envelope.created_at")
    assert message is not None and "9999-12-31" in message
    env.created_at.seconds = 253_402_300_799  # the last second RFC 3339 can write
    assert verdict(lambda: v.check_envelope(env, Limits()), "envelope.") is None


@FUZZ
@given(card=messages(agent_pb2.AgentCard), limits=limits)
@example(card=agent_pb2.AgentCard(capabilities=["a\u200bb"]), limits=Limits())  # zero-width
@example(card=agent_pb2.AgentCard(kind=-1), limits=Limits())
def test_cards_pass_or_name_the_field(card: agent_pb2.AgentCard, limits: Limits) -> None:
    if verdict(lambda: v.check_card(card, limits), "card.") is None:
        assert card.kind in agent_pb2.AgentKind.values()
        assert all(c and c.isprintable() and " " not in c for c in card.capabilities)
        assert to_json(card)


@st.composite
def tasks(draw: st.DrawFn) -> task_pb2.Task:
    """Any task a submitter could send, with the times the hub sets itself cleared."""
    task: task_pb2.Task = draw(messages(task_pb2.Task))
    for name in ("created_at", "updated_at", "completed_at"):
        task.ClearField(name)  # type: ignore[arg-type]
    task.deadline.CopyFrom(draw(valid_times))
    task.id = draw(st.just(task.id) | st.text(ID_CHARS, max_size=8))
    return task


@FUZZ
@given(task=tasks(), limits=limits, max_attempts=st.integers(1, 10))
def test_tasks_pass_or_name_the_field(
    task: task_pb2.Task, limits: Limits, max_attempts: int
) -> None:
    if verdict(lambda: check_submission(task, limits, max_attempts), "task") is None:
        assert task.max_attempts <= max_attempts
        assert all(k in agent_pb2.AgentKind.values() and k for k in task.preferred_kinds)
        assert to_json(task)


def test_a_deadline_json_cannot_write_is_refused() -> None:
    task = task_pb2.Task(deadline=Timestamp(seconds=2**62))
    assert verdict(lambda: check_submission(task, Limits(), 5), "task.deadline") is not None
