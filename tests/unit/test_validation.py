"""Input checks: each bad input is refused with the field and the limit it broke."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from hypothesis import given, settings, strategies as st

from agentplex.core import validation as v
from agentplex.core.globmatch import is_pattern
from agentplex.core.limits import Limits
from agentplex.errors import HubError, InvalidArgument, ResourceExhausted
from agentplex.v1 import agent_pb2, envelope_pb2

SMALL = Limits(
    max_payload_bytes=10,
    max_headers=2,
    max_header_bytes=20,
    max_batch=3,
    max_id_length=8,
    max_capabilities=2,
    max_labels=2,
    max_text_length=5,
)
CHANNEL_CHARS = "ABCXYZabcxyz0189_.:-"


def refused(error: type[HubError], fn: Callable[[], object], *fragments: str) -> str:
    with pytest.raises(error) as err:
        fn()
    message = err.value.message
    assert str(err.value) == message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def test_error_codes() -> None:
    assert InvalidArgument("x").code == grpc.StatusCode.INVALID_ARGUMENT
    assert ResourceExhausted("x").code == grpc.StatusCode.RESOURCE_EXHAUSTED


# --- channels and patterns ----------------------------------------------------------------------


@settings(max_examples=150)
@given(name=st.text(alphabet=CHANNEL_CHARS, min_size=1, max_size=200))
def test_valid_channel_names(name: str) -> None:
    assert v.check_channel(name) == name
    assert v.check_subscription(name) == name


@pytest.mark.parametrize(
    "name", ["", "a" * 201, "a b", "a/b", "caf\u00e9", "a*", "a?", "[a]", "a\\b", "a\n", "a,b"]
)
def test_invalid_channel_names(name: str) -> None:
    refused(
        InvalidArgument,
        lambda: v.check_channel(name, "envelope.channel"),
        "envelope.channel",
        "200",
    )


@settings(max_examples=150)
@given(
    pattern=st.text(alphabet=CHANNEL_CHARS + "*?[]^\\", min_size=1, max_size=200).filter(
        lambda p: is_pattern(p)
    )
)
def test_valid_patterns(pattern: str) -> None:
    assert v.check_subscription(pattern) == pattern


@pytest.mark.parametrize("pattern", ["a*/b", "a* b", "*" * 201, "caf\u00e9*", "a?\n"])
def test_invalid_patterns(pattern: str) -> None:
    refused(
        InvalidArgument,
        lambda: v.check_subscription(pattern, "subscribe.channels[0]"),
        "subscribe.channels[0]",
        "200",
    )


def test_invalid_plain_subscription_is_checked_as_a_channel() -> None:
    refused(
        InvalidArgument, lambda: v.check_subscription("a b"), "channels", "not a valid channel name"
    )


def test_inbox_and_system_names() -> None:
    assert v.inbox_of("bot-1") == "agent.bot-1"
    assert v.is_inbox("agent.bot-1")
    assert not v.is_inbox("agents.bot-1")
    assert v.is_system("_sys.agents") and v.is_system("_dlq.tasks")
    assert not v.is_system("sys._x")


# --- ids, text, maps ----------------------------------------------------------------------------


def test_check_id() -> None:
    assert v.check_id("", "task.id", SMALL) == ""
    assert v.check_id("a.b:c_-9", "task.id", SMALL) == "a.b:c_-9"
    assert v.check_id("x" * 8, "task.id", SMALL) == "x" * 8
    refused(
        InvalidArgument,
        lambda: v.check_id("", "task.id", SMALL, required=True),
        "task.id",
        "required",
    )
    refused(InvalidArgument, lambda: v.check_id("x" * 9, "task.id", SMALL), "task.id", "8")
    refused(InvalidArgument, lambda: v.check_id("a b", "task.id", SMALL), "task.id")
    refused(InvalidArgument, lambda: v.check_id("a/b", "task.id", SMALL), "task.id")


def test_check_text() -> None:
    assert v.check_text("12345", "card.name", SMALL) == "12345"
    refused(
        InvalidArgument,
        lambda: v.check_text("123456", "card.name", SMALL),
        "card.name",
        "6",
        "5",
        "limits.max_text_length",
    )


def test_check_map() -> None:
    v.check_map(
        {"a": "1", "b": "2"}, "envelope.headers", SMALL, SMALL.max_headers, "limits.max_headers"
    )
    refused(
        InvalidArgument,
        lambda: v.check_map(
            {"a": "", "b": "", "c": ""}, "envelope.headers", SMALL, 2, "limits.max_headers"
        ),
        "envelope.headers",
        "3 entries",
        "2",
    )
    v.check_map(
        {"k" * 10: "v" * 10}, "card.labels", SMALL, 2, "limits.max_labels"
    )  # exactly max_header_bytes
    refused(
        ResourceExhausted,
        lambda: v.check_map({"k" * 10: "v" * 11}, "card.labels", SMALL, 2, "limits.max_labels"),
        "card.labels",
        "21",
        "20",
        "limits.max_header_bytes",
    )


# --- envelopes ----------------------------------------------------------------------------------


def good_envelope() -> envelope_pb2.Envelope:
    return envelope_pb2.Envelope(
        id="m-1",
        channel="jobs",
        payload=b"x" * 10,
        headers={"a": "1", "b": "2"},
        reply_to="agent.me",
        content_type="text/plain",
        correlation_id="c" * 8,
    )


def test_good_envelope_passes_and_hub_fields_are_not_checked() -> None:
    env = good_envelope()
    env.sender = "not checked: the hub replaces it"
    env.sha256 = "bogus"
    env.position.seq = 99
    v.check_envelope(env, SMALL)
    v.check_envelope(envelope_pb2.Envelope(channel="c"), SMALL)  # optional fields empty


@pytest.mark.parametrize(
    ("mutate", "error", "fragments"),
    [
        (lambda e: setattr(e, "channel", ""), InvalidArgument, ["envelope.channel"]),
        (lambda e: setattr(e, "channel", "a*"), InvalidArgument, ["envelope.channel"]),
        (
            lambda e: setattr(e, "payload", b"x" * 11),
            ResourceExhausted,
            ["envelope.payload", "11", "10", "limits.max_payload_bytes"],
        ),
        (lambda e: setattr(e, "id", "bad id"), InvalidArgument, ["envelope.id"]),
        (lambda e: setattr(e, "id", "x" * 9), InvalidArgument, ["envelope.id", "8"]),
        (lambda e: e.headers.update({"c": "3"}), InvalidArgument, ["envelope.headers", "2"]),
        (
            lambda e: e.headers.update({"a": "1" * 30}),
            ResourceExhausted,
            ["envelope.headers", "limits.max_header_bytes"],
        ),
        (lambda e: setattr(e, "reply_to", "no spaces"), InvalidArgument, ["envelope.reply_to"]),
        (
            lambda e: setattr(e, "content_type", "t" * 201),
            InvalidArgument,
            ["envelope.content_type", "200"],
        ),
        (
            lambda e: setattr(e, "correlation_id", "c" * 9),
            InvalidArgument,
            ["envelope.correlation_id", "8"],
        ),
    ],
)
def test_bad_envelope_fields(
    mutate: Callable[[envelope_pb2.Envelope], object],
    error: type[HubError],
    fragments: list[str],
) -> None:
    env = good_envelope()
    mutate(env)
    refused(error, lambda: v.check_envelope(env, SMALL), *fragments)


def test_envelope_field_prefix_is_used() -> None:
    env = envelope_pb2.Envelope(channel="")
    refused(
        InvalidArgument,
        lambda: v.check_envelope(env, SMALL, 3),
        "envelopes[3].channel",
    )


def test_check_batch_size() -> None:
    v.check_batch_size(1, SMALL)
    v.check_batch_size(3, SMALL)
    refused(InvalidArgument, lambda: v.check_batch_size(0, SMALL), "envelopes", "empty")
    refused(
        ResourceExhausted,
        lambda: v.check_batch_size(4, SMALL, "batch"),
        "batch",
        "4",
        "3",
        "limits.max_batch",
    )


# --- enums and cards ----------------------------------------------------------------------------


def test_check_enum() -> None:
    v.check_enum(agent_pb2.AGENT_KIND_CODEX, agent_pb2.AgentKind, "card.kind")
    v.check_enum(0, agent_pb2.AgentKind, "card.kind")
    msg = refused(
        InvalidArgument,
        lambda: v.check_enum(99, agent_pb2.AgentKind, "card.kind"),
        "card.kind",
        "99",
    )
    assert "AGENT_KIND_CLAUDE_CODE" in msg and "AGENT_KIND_UNSPECIFIED" not in msg
    refused(
        InvalidArgument,
        lambda: v.check_enum(0, agent_pb2.AgentKind, "kind", allow_unspecified=False),
        "kind",
        "0",
    )
    refused(InvalidArgument, lambda: v.check_enum(-1, agent_pb2.AgentStatus, "status"), "status")


def good_card() -> agent_pb2.AgentCard:
    return agent_pb2.AgentCard(
        id="bot-1",
        name="Bot",
        kind=agent_pb2.AGENT_KIND_CUSTOM,
        capabilities=["python", "lang:go"],
        labels={"team": "x"},
        version="1.0",
    )


def test_good_card_passes() -> None:
    v.check_card(good_card(), SMALL)
    v.check_card(agent_pb2.AgentCard(), SMALL)  # everything optional


def _set_kind(card: agent_pb2.AgentCard) -> None:
    card.kind = 42  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [
        (lambda c: setattr(c, "id", "bad id"), ["card.id"]),
        (lambda c: setattr(c, "id", "x" * 9), ["card.id", "8"]),
        (lambda c: setattr(c, "name", "n" * 6), ["card.name", "limits.max_text_length"]),
        (lambda c: setattr(c, "version", "v" * 6), ["card.version", "limits.max_text_length"]),
        (_set_kind, ["card.kind", "42"]),
        (
            lambda c: c.capabilities.append("x"),
            ["card.capabilities", "3", "2", "limits.max_capabilities"],
        ),
        (lambda c: c.capabilities.__setitem__(1, ""), ["card.capabilities[1]"]),
        (lambda c: c.capabilities.__setitem__(0, "has space"), ["card.capabilities[0]"]),
        (lambda c: c.capabilities.__setitem__(0, "tab\there"), ["card.capabilities[0]"]),
        (lambda c: c.capabilities.__setitem__(1, "c" * 101), ["card.capabilities[1]", "100"]),
        (lambda c: c.labels.update({"b": "", "c": ""}), ["card.labels", "3", "2"]),
        (lambda c: c.labels.update({"big": "v" * 30}), ["card.labels", "limits.max_header_bytes"]),
    ],
)
def test_bad_cards(mutate: Callable[[agent_pb2.AgentCard], object], fragments: list[str]) -> None:
    card = good_card()
    mutate(card)
    with pytest.raises((InvalidArgument, ResourceExhausted)) as err:
        v.check_card(card, SMALL)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_card_capability_of_exactly_100_characters_passes() -> None:
    card = good_card()
    card.capabilities[0] = "c" * 100
    v.check_card(card, SMALL)


# --- every configurable limit is named in its error -------------------------------------------


def _envelope_with(**fields: object) -> envelope_pb2.Envelope:
    env = envelope_pb2.Envelope(channel="c")
    for key, value in fields.items():
        if key == "headers":
            env.headers.update(value)  # type: ignore[call-overload]
        else:
            setattr(env, key, value)
    return env


@pytest.mark.parametrize(
    ("check", "setting"),
    [
        pytest.param(
            lambda: v.check_text("x" * 6, "f", SMALL), "limits.max_text_length", id="text"
        ),
        pytest.param(
            lambda: v.check_envelope(_envelope_with(payload=b"x" * 11), SMALL),
            "limits.max_payload_bytes",
            id="payload",
        ),
        pytest.param(
            lambda: v.check_envelope(_envelope_with(headers={"k": "v" * 30}), SMALL),
            "limits.max_header_bytes",
            id="header-bytes",
        ),
        pytest.param(lambda: v.check_batch_size(4, SMALL), "limits.max_batch", id="batch"),
        pytest.param(
            lambda: v.check_card(agent_pb2.AgentCard(capabilities=["a", "b", "c"]), SMALL),
            "limits.max_capabilities",
            id="capabilities",
        ),
        pytest.param(
            lambda: v.check_id("x" * 9, "task.id", SMALL),
            "limits.max_id_length",
            id="id-length",
        ),
        pytest.param(
            lambda: v.check_envelope(_envelope_with(correlation_id="x" * 9), SMALL),
            "limits.max_id_length",
            id="correlation-id-length",
        ),
        pytest.param(
            lambda: v.check_envelope(_envelope_with(headers={"a": "", "b": "", "c": ""}), SMALL),
            "limits.max_headers",
            id="header-count",
        ),
        pytest.param(
            lambda: v.check_card(agent_pb2.AgentCard(labels={"a": "", "b": "", "c": ""}), SMALL),
            "limits.max_labels",
            id="label-count",
        ),
    ],
)
def test_limit_errors_name_their_setting(check: Callable[[], object], setting: str) -> None:
    with pytest.raises((InvalidArgument, ResourceExhausted)) as err:
        check()
    assert setting in str(err.value)
