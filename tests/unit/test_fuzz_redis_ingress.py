"""Fuzz of what the Redis edge decodes from any Redis client: messages on `<prefix>pub:<channel>`
(a JSON envelope, or raw bytes as the payload, on a channel named by the Redis channel) and
session frames on `<prefix>session:<id>:in`. Each is accepted or refused with a reason; nothing
a Redis client sends raises anything else."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import grpc
import pytest
from hypothesis import example, given, strategies as st

from agentplex.edges.frames import Refused, to_json
from agentplex.edges.redis.codec import RAW_CONTENT_TYPE, decode_publish
from agentplex.edges.redis.ingress import Ingress
from agentplex.edges.redis.names import Names
from agentplex.edges.redis.sessions import RedisConnection
from agentplex.hub import Hub
from agentplex.v1 import envelope_pb2, session_service_pb2 as ss
from tests.support.fuzz import FUZZ, echoed_ref, json_values, shaped, valid_messages
from tests.support.hubs import fast_settings

NAMES = Names("agentplex:")
CHANNEL_CHARS = "abcxyz0189_.:-"
channels = st.text(CHANNEL_CHARS, min_size=1, max_size=12) | st.text(max_size=210)
envelope_objects = shaped(envelope_pb2.Envelope.DESCRIPTOR)
# What a Redis client may PUBLISH: anything, JSON values, envelope-shaped objects, real envelopes.
published = (
    st.binary()
    | json_values.map(lambda v: json.dumps(v).encode())
    | envelope_objects.map(lambda v: json.dumps(v).encode())
    | valid_messages(envelope_pb2.Envelope).map(lambda e: to_json(e).encode())
)


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[asyncio.Runner, Hub]]:
    """One in-process hub (memory engine) for every example: examples run on its loop."""
    with asyncio.Runner() as runner:
        hub = Hub(fast_settings())
        runner.run(hub.start())
        yield runner, hub
        runner.run(hub.stop())


@FUZZ
@given(channel=channels, data=published)
@example(channel="chat", data=b'{"id": "\xff"}')  # not UTF-8
@example(channel="chat", data=b'  {"payload": ' + b"[" * 100_000)  # nested past the limits
@example(channel="chat", data=b'{"channel": "other"}')
@example(channel="chat", data=b"\xff\xfe raw")
def test_a_publish_decodes_to_an_envelope_on_its_channel_or_is_refused(
    channel: str, data: bytes
) -> None:
    try:
        env = decode_publish(channel, data)
    except Refused as err:
        assert data.lstrip()[:1] == b"{", "raw data is never refused"
        assert err.reason.startswith("not an agentplex.v1.Envelope in JSON (") or (
            "differs from" in err.reason
        ), err.reason
        return
    assert env.channel == channel
    if data.lstrip()[:1] != b"{":
        assert (env.payload, env.content_type) == (data, RAW_CONTENT_TYPE)


@FUZZ
@given(raw=st.binary() | channels.map(lambda c: f"agentplex:pub:{c}".encode()), data=published)
@example(raw=b"agentplex:pub:chat", data=b"hello")
@example(raw=b"agentplex:pub:\xff\xfe", data=b"hello")
@example(raw=b"agentplex:pub:chat", data=b'{"id": "\xff"}')
@example(raw=b"agentplex:pub:chat", data=b'{"createdAt": "99999-01-01T00:00:00Z"}')
def test_ingress_accepts_or_refuses_each_publish_and_keeps_what_it_accepts(
    running: tuple[asyncio.Runner, Hub], raw: bytes, data: bytes
) -> None:
    """Through the hub's own checks: one counter moves per message; nothing else escapes."""
    runner, hub = running
    ingress = Ingress(hub, ("*",))
    channel = NAMES.pub_channel(raw.decode(errors="replace"))  # as the edge reads the name
    if channel is None:
        return
    runner.run(ingress.publish(channel, data))
    assert (ingress.accepted, ingress.refused) in ((1, 0), (0, 1))
    if ingress.accepted:  # stored, and every transport can carry it (the mirror writes JSON)
        top = runner.run(hub.read(channel, None, None, 1)).top
        (entry,) = runner.run(hub.read(channel, top - 1, None, 1)).entries
        assert to_json(entry.envelope)
        assert data.lstrip()[:1] == b"{" or entry.envelope.payload == data


def frame_data() -> st.SearchStrategy[bytes]:
    objects = shaped(ss.ConnectRequest.DESCRIPTOR) | valid_messages(ss.ConnectRequest).map(
        lambda m: json.loads(to_json(m))
    )
    return st.binary() | objects.map(lambda v: json.dumps(v).encode())


@FUZZ
@given(data=frame_data())
@example(data=b'{"ref": "r1", "hello": {"card": {"name": "\xff"}}}')
@example(data=b'{"ref": "\\ud800", "helo": {}}')
@example(data=b'{"ref": "p", "publish": {"envelopes": [{"channel": "secret"}]}}')
def test_a_session_frame_is_queued_or_answered_with_an_error(
    running: tuple[asyncio.Runner, Hub], data: bytes
) -> None:
    """A Redis session's frame either waits for the session or gets an error frame back, with
    the frame's ref when it had one (publishing outside the allow-list is refused here)."""
    runner, hub = running
    ingress = Ingress(hub, ("chat", "in.*"))
    conn = RedisConnection(hub, None, "out", "s1", ingress)  # type: ignore[arg-type]
    conn.feed(data)
    outbox = conn.connection.outbox
    if not len(outbox):
        return
    (answer,) = runner.run(outbox.take())
    assert isinstance(answer, ss.ConnectResponse) and answer.WhichOneof("frame") == "error"
    assert answer.error.code in (
        grpc.StatusCode.INVALID_ARGUMENT.value[0],
        grpc.StatusCode.PERMISSION_DENIED.value[0],
    )
    assert answer.error.message and not answer.error.fatal
    assert answer.ref == echoed_ref(data)
    assert to_json(answer)  # it can be sent
