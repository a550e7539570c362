"""Fuzz of the session-frame decoders the WebSocket edge (text: JSON, binary: protobuf) and the
Redis sessions (JSON as bytes) run on everything a client sends: each input either decodes to a
ConnectRequest or is `Refused` with a reason naming the problem, never any other exception."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import example, given, strategies as st

from agentplex.edges.frames import Refused, parse_json_frame, parse_proto_frame, to_json
from agentplex.errors import InvalidArgument
from agentplex.hub.session import error_frame
from agentplex.v1 import session_service_pb2 as ss
from tests.support.fuzz import (
    FUZZ,
    corrupted,
    echoed_ref,
    json_values,
    shaped,
    valid_messages,
)

JSON_REFUSAL = "frame: not an agentplex.v1.ConnectRequest in JSON ("
frame_objects = shaped(ss.ConnectRequest.DESCRIPTOR)


def decode_json(data: str | bytes) -> ss.ConnectRequest | Refused:
    """The decoder's answer; any exception but `Refused` fails the test."""
    try:
        frame = parse_json_frame(data)
    except Refused as err:
        assert err.reason.startswith(JSON_REFUSAL) and err.reason.endswith(")"), err.reason
        assert len(err.reason) > len(JSON_REFUSAL) + 1, "the reason names the problem"
        # The edge answers with an error frame echoing the ref: it must be one it can send.
        answer = error_frame(InvalidArgument(err.reason), err.ref)
        assert ss.ConnectResponse.FromString(answer.SerializeToString()).ref == err.ref
        assert json.loads(to_json(answer))["error"]["message"] == err.reason
        return err
    # What decoded is a valid frame: it is written back and read again as the same message.
    assert json_format.Parse(to_json(frame), ss.ConnectRequest()) == frame
    return frame


def decode_proto(data: bytes) -> ss.ConnectRequest | Refused:
    try:
        frame = parse_proto_frame(data)
    except Refused as err:
        assert err.reason.startswith("frame: not an encoded agentplex.v1.ConnectRequest (")
        return err
    assert parse_proto_frame(frame.SerializeToString()) == frame
    return frame


@FUZZ
@given(text=st.text())
@example(text="[" * 100_000)  # nesting past Python's recursion limit
@example(text='{"ref": "r", "x": ' + "[" * 100_000)
@example(text='{"heartbeat": {"activeTasks": ' + "9" * 5000 + "}}")  # past int's digit limit
@example(text='"\ud800"')
@example(text="")
@example(text="[]")  # json_format's empty message
@example(text='{"ref": "\\ud800", "x": 1}')  # an escaped lone surrogate as the ref
def test_any_text_frame_decodes_or_is_refused(text: str) -> None:
    assert decode_json(text).ref == echoed_ref(text)


@FUZZ
@given(data=st.binary())
@example(data=b'{"ref": "r1", "hello": {"card": {"name": "\xff"}}}')  # not UTF-8
@example(data=b'\xef\xbb\xbf{"ref": "bom"}')  # a UTF-8 byte order mark
@example(data='{"ref": "utf-16", "x": 1}'.encode("utf-16-le"))
@example(data='{"ref": "\ud800"}'.encode("utf-8", "surrogatepass"))
@example(data=b"[" * 100_000)
def test_any_bytes_as_a_json_frame_decode_or_are_refused(data: bytes) -> None:
    assert decode_json(data).ref == echoed_ref(data)  # Redis sessions hand the decoder bytes


@FUZZ
@given(value=json_values)
def test_any_json_value_decodes_or_is_refused(value: Any) -> None:
    text = json.dumps(value)
    assert decode_json(text).ref == echoed_ref(text)


@FUZZ
@given(value=frame_objects)
@example(value={"ref": "r2", "hello": {"card": {"kind": "AGENT_KIND_ROBOT"}}})
@example(value={"ref": "r3", "heartbeat": {"activeTasks": 2**32}})
@example(value={"ref": "r4", "ack": {"positions": [{"position": {"seq": "-1"}}]}})
@example(value={"ref": "r5", "publish": {"envelopes": [{"createdAt": "99999-01-01T00:00:00Z"}]}})
@example(value={"ref": "r6", "hello": {}, "goodbye": {}})  # two members of the oneof
@example(value={"ref": "\ud800", "publsh": {}})  # a ref no error frame can echo
@example(value={"ref": "q", "publish": {"envelopes": "\ud800"}})  # quoted in the reason
def test_frames_with_wrong_values_are_refused_echoing_their_ref(value: dict[str, Any]) -> None:
    """Objects with the real field names; a refusal still echoes a readable `ref`."""
    text = json.dumps(value)
    assert decode_json(text).ref == echoed_ref(text)


@FUZZ
@given(value=json_values, depth=st.integers(1, 3000))
def test_deeply_nested_frames_are_refused(value: Any, depth: int) -> None:
    """Nesting past json_format's limit (100) or Python's (about 1000) is refused; the ref is
    echoed when Python's json can still read it."""
    nested = '{"ref": "deep", "x": ' + "[" * depth + json.dumps(value) + "]" * depth + "}"
    assert decode_json(nested).ref in ("deep", "")
    inside = '{"ref": "deep", "hello": ' + '{"card": ' * depth + "{}" + "}" * (depth + 1)
    answer = decode_json(inside)
    assert isinstance(answer, Refused) == (depth > 1) and answer.ref in ("deep", "")


@FUZZ
@given(frame=valid_messages(ss.ConnectRequest))
def test_valid_frames_decode_to_themselves_in_both_encodings(frame: ss.ConnectRequest) -> None:
    assert decode_json(to_json(frame)) == frame
    assert decode_json(to_json(frame).encode()) == frame
    assert decode_proto(frame.SerializeToString()) == frame


@FUZZ
@given(data=corrupted(valid_messages(ss.ConnectRequest)))
@example(data=b"\x0a\xff\xff\xff\xff\x0f")  # a length far past the end
@example(data=b"\x0a\x02\xc3\x28")  # ref that is not UTF-8
@example(data=b"\xa3\x06" * 20_000)  # unknown groups nested past the recursion limit
@example(data=b"\x0f")  # an end-group tag
def test_corrupted_protobuf_frames_decode_or_are_refused(data: bytes) -> None:
    decode_proto(data)


@FUZZ
@given(data=st.binary())
def test_any_binary_frame_decodes_or_is_refused(data: bytes) -> None:
    decode_proto(data)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b'{"ref": "u", "hello": {"card": {"name": "\xff"}}}', "can't decode byte 0xff"),
        ('{"x": ' + "[" * 100_000, "recursion"),
        ('{"ref": "e", "hello": {"card": {"kind": "ROBOT"}}}', "Invalid enum value ROBOT"),
        ('{"ref": "n", "heartbeat": {"activeTasks": 4294967296}}', "Value out of range"),
        ("12", "a frame is a JSON object"),
        (b"  []", "a frame is a JSON object"),
    ],
)
def test_refusals_name_the_problem(data: str | bytes, problem: str) -> None:
    answer = decode_json(data)
    assert isinstance(answer, Refused) and problem in answer.reason
