"""Session frames for the edges: the JSON and the protobuf encodings of the same outbox items
mean the same messages, and a message's JSON is made once however many subscribers get it."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from agentplex.core.channel_log import Accepted
from agentplex.core.outbox import Item
from agentplex.edges.frames import (
    Refused,
    envelope_json,
    json_frames,
    parse_json_frame,
    parse_proto_frame,
    proto_frames,
)
from agentplex.v1 import envelope_pb2, session_service_pb2 as ss


def accepted(seq: int, payload: bytes) -> Accepted:
    env = envelope_pb2.Envelope(id=f"id{seq}", channel="c", payload=payload, sha256="ab")
    env.position.seq, env.position.epoch = seq, "e1"
    return Accepted(env, seq, "e1", 0)


def test_json_and_protobuf_frames_carry_the_same_messages() -> None:
    e1, e2 = accepted(1, b"\x00\xffbinary"), accepted(2, "é".encode())
    items: list[Item] = [
        (e1, 1),
        (e2, 3),
        ss.ConnectResponse(ref="r", receipt=ss.Receipt()),
        ss.ConnectResponse(ping=ss.Ping()).SerializeToString(),
        (e1, 2),
    ]
    as_json = [json_format.Parse(f, ss.ConnectResponse()) for f in json_frames(items)]
    as_proto = [ss.ConnectResponse.FromString(f) for f in proto_frames(items)]
    assert as_json == as_proto and len(as_json) == 4
    first = as_json[0].deliveries.deliveries
    assert [(d.envelope.position.seq, d.attempt) for d in first] == [(1, 1), (2, 3)]
    assert first[0].envelope.payload == b"\x00\xffbinary"


def test_an_envelopes_json_is_made_once() -> None:
    entry = accepted(7, b"x")
    made = envelope_json(entry)
    assert envelope_json(entry) is made and entry.json is made
    frames = json_frames([(entry, 1)]) + json_frames([(entry, 1)])  # two subscribers
    assert all(made in frame for frame in frames)


def test_client_frames_parse_or_are_refused_with_their_ref() -> None:
    hello = ss.ConnectRequest(ref="h", hello=ss.Hello())
    assert parse_json_frame(json_format.MessageToJson(hello)) == hello
    assert parse_proto_frame(hello.SerializeToString()) == hello
    with pytest.raises(Refused) as bad:
        parse_json_frame('{"ref": "r9", "hullo": {}}')
    assert bad.value.ref == "r9" and "ConnectRequest" in bad.value.reason
    with pytest.raises(Refused):
        parse_proto_frame(b"\xff\xff\xff")
