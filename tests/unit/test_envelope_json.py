"""The envelope JSON written field by field is `json_format`'s canonical JSON, for any envelope
a publisher can get accepted (any text, bytes, headers, times from year 1 to 9999)."""

from __future__ import annotations

import json

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import example, given, strategies as st

from agentplex.core.validation import TIMESTAMP_SECONDS
from agentplex.edges.envelope_json import envelope_json, timestamp_text
from agentplex.edges.frames import to_json
from agentplex.v1 import envelope_pb2

text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)  # no lone surrogates
nanos = st.sampled_from([0, 1, 999, 1000, 120_000, 1_000_000, 5_000_000, 999_999_999]) | (
    st.integers(0, 999_999_999)
)
times = st.builds(Timestamp, seconds=st.integers(*TIMESTAMP_SECONDS), nanos=nanos)
positions = st.builds(envelope_pb2.StreamPosition, seq=st.integers(0, 2**64 - 1), epoch=text)


@st.composite
def envelopes(draw: st.DrawFn) -> envelope_pb2.Envelope:
    env = envelope_pb2.Envelope(
        id=draw(text),
        channel=draw(text),
        sender=draw(text),
        content_type=draw(text),
        payload=draw(st.binary(max_size=40)),
        headers=draw(st.dictionaries(text, text, max_size=3)),
        correlation_id=draw(text),
        reply_to=draw(text),
        sha256=draw(text),
    )
    if draw(st.booleans()):
        env.created_at.CopyFrom(draw(times))  # set, even to the epoch itself
    if draw(st.booleans()):
        env.position.CopyFrom(draw(positions))
    return env


@given(envelopes())
@example(envelope_pb2.Envelope())
@example(envelope_pb2.Envelope(created_at=Timestamp(), position=envelope_pb2.StreamPosition()))
@example(envelope_pb2.Envelope(channel='é"\\\n\x00\U0001f600', headers={"k\x7f": "ü"}))
@example(envelope_pb2.Envelope(sha256="s"))
@example(envelope_pb2.Envelope(sha256="s", position=envelope_pb2.StreamPosition(seq=1)))
def test_matches_json_format(env: envelope_pb2.Envelope) -> None:
    written = envelope_json(env)
    assert json.loads(written) == json.loads(to_json(env))
    if len(env.headers) <= 1:  # beyond one entry, a map's order is the only freedom
        assert written == to_json(env)
    assert json_format.Parse(written, envelope_pb2.Envelope()) == env


@given(times)
def test_times_read_back(stamp: Timestamp) -> None:
    written = timestamp_text(stamp.seconds, stamp.nanos)
    assert written == stamp.ToJsonString()
    again = Timestamp()
    again.FromJsonString(written)
    assert again == stamp
