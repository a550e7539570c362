"""The Redis edge's pure parts: channel names, JSON codec, allow-list, backoff, URL redaction."""

from __future__ import annotations

import base64
import json

import hiredis
import pytest
from google.protobuf import json_format

from agentplex.config.show import masked_url as redacted
from agentplex.core.globmatch import glob_match
from agentplex.edges.frames import Refused, parse_json_frame, to_json
from agentplex.edges.redis.codec import decode_publish
from agentplex.edges.redis.ingress import allow_list
from agentplex.edges.redis.names import Names
from agentplex.redisconn import Backoff
from agentplex.redisdirect import command
from agentplex.v1 import envelope_pb2, session_service_pb2 as ss


def test_names_round_trip() -> None:
    names = Names("agentplex:")
    assert names.msg("chat") == "agentplex:msg:chat"
    assert names.pub_channel("agentplex:pub:jobs.build") == "jobs.build"
    assert names.pub_channel("agentplex:msg:jobs.build") is None
    assert names.session_id("agentplex:session:s-1:in") == "s-1"
    assert names.session_id("agentplex:session:s-1:out") is None
    assert names.session_out("s-1") == "agentplex:session:s-1:out"
    assert names.leader_key == "agentplex:edge:leader"


@pytest.mark.parametrize("data", ["", "x", '{"payload":"\u00fc"}', "ü" * 300, "\r\n$3\r\n"])
def test_commands_are_packed_in_the_resp_redis_reads(data: str) -> None:
    reader = hiredis.Reader()
    parts = (b"PUBLISH", b"agentplex:msg:jobs.build", data.encode())
    reader.feed(command(*parts) * 2 + command())
    for _ in range(2):
        assert reader.gets() == list(parts)
    assert reader.gets() == []
    assert reader.gets() is False


def test_patterns_match_only_their_family() -> None:
    names = Names("agentplex:")
    assert glob_match(names.pub_pattern, "agentplex:pub:chat")
    assert not glob_match(names.pub_pattern, "agentplex:msg:chat")
    assert glob_match(names.session_in_pattern, "agentplex:session:a:in")
    assert not glob_match(names.session_in_pattern, "agentplex:session:a:out")


def test_prefix_with_glob_characters_is_matched_literally() -> None:
    names = Names("t[1]*:")
    assert glob_match(names.pub_pattern, "t[1]*:pub:chat")
    assert not glob_match(names.pub_pattern, "t1x:pub:chat")


def test_envelope_json_is_canonical_and_parses_back() -> None:
    env = envelope_pb2.Envelope(id="m1", channel="chat", payload=b"\x00hi", sha256="ab")
    env.position.seq, env.position.epoch = 7, "e1"
    data = json.loads(to_json(env))
    assert data["position"] == {"seq": "7", "epoch": "e1"}
    assert base64.b64decode(data["payload"]) == b"\x00hi"
    assert json_format.Parse(to_json(env), envelope_pb2.Envelope()) == env


def test_raw_bytes_are_the_payload() -> None:
    for data in (b"hello", b"", b"[1, 2]", b'"a string"', b"\xff\xfe"):
        env = decode_publish("chat", data)
        assert env.payload == data
        assert env.channel == "chat"
        assert env.content_type == "application/octet-stream"


def test_json_envelope_is_parsed() -> None:
    data = json.dumps(
        {"id": "x1", "contentType": "text/plain", "payload": "aGk=", "headers": {"k": "v"}}
    ).encode()
    env = decode_publish("chat", b"  " + data)
    assert (env.id, env.channel, env.payload, env.content_type) == (
        "x1",
        "chat",
        b"hi",
        "text/plain",
    )
    assert dict(env.headers) == {"k": "v"}


@pytest.mark.parametrize(
    ("data", "names"),
    [
        (b"{not json", "not an agentplex.v1.Envelope"),
        (b'{"bogus": 1}', "bogus"),
        (b'{"payload": "not base64!"}', "payload"),
        (b'{"channel": "other"}', "envelope.channel 'other' differs"),
    ],
)
def test_bad_json_envelopes_are_refused_with_the_reason(data: bytes, names: str) -> None:
    with pytest.raises(Refused) as err:
        decode_publish("chat", data)
    assert names in err.value.reason


def test_frames_decode_and_bad_ones_keep_their_ref() -> None:
    frame = parse_json_frame(b'{"ref": "r1", "hello": {"card": {"id": "a1"}}}')
    assert frame.ref == "r1" and frame.hello.card.id == "a1"
    with pytest.raises(Refused) as err:
        parse_json_frame(b'{"ref": "r2", "helo": {}}')
    assert err.value.ref == "r2" and "helo" in err.value.reason
    for junk in (b"nope", b"[1]", b'{"ref": 5, "x": 1}'):
        with pytest.raises(Refused) as err:
            parse_json_frame(junk)
        assert err.value.ref == ""


def test_response_frames_encode_to_json() -> None:
    frame = ss.ConnectResponse(ref="r", error=ss.Error(code=3, message="bad", fatal=True))
    assert json.loads(to_json(frame)) == {
        "ref": "r",
        "error": {"code": "ERROR_CODE_INVALID_ARGUMENT", "message": "bad", "fatal": True},
    }


def test_allow_list() -> None:
    assert allow_list("*") == ("*",)
    assert allow_list(" jobs.*, chat ,,") == ("jobs.*", "chat")
    assert allow_list("") == ()


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(initial=0.1, maximum=0.5)
    assert [backoff.delay() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.delay() == 0.1


def test_redacted_hides_the_password() -> None:
    assert redacted("redis://:s3cret@h:6380/0") == "redis://:***@h:6380/0"
    assert redacted("rediss://user:s3cret@h/1") == "rediss://user:***@h/1"
    assert redacted("redis://h:6380/0") == "redis://h:6380/0"
