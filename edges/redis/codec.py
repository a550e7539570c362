"""JSON on Redis <-> agentplex.v1 messages (proto3 canonical JSON), with no I/O.

A publish into the hub is either a JSON envelope or raw bytes: data whose first non-blank byte
is `{` is meant as an envelope (and refused if it is not one); anything else is the payload.
"""

from __future__ import annotations

import json

from google.protobuf import json_format
from google.protobuf.message import Message

from agentplex.v1 import envelope_pb2, session_service_pb2 as ss

RAW_CONTENT_TYPE = "application/octet-stream"


class Refused(ValueError):
    """Input from Redis the edge cannot take; `ref` echoes the frame's ref when it had one."""

    def __init__(self, reason: str, ref: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.ref = ref


def to_json(message: Message) -> bytes:
    """Compact canonical JSON (lowerCamelCase names, base64 bytes, uint64 as strings)."""
    return json.dumps(json_format.MessageToDict(message), separators=(",", ":")).encode()


def decode_publish(channel: str, data: bytes) -> envelope_pb2.Envelope:
    """The envelope a Redis client published on `<prefix>pub:<channel>`."""
    if data.lstrip()[:1] != b"{":
        return envelope_pb2.Envelope(channel=channel, content_type=RAW_CONTENT_TYPE, payload=data)
    env = envelope_pb2.Envelope()
    try:
        json_format.Parse(data, env)
    except json_format.ParseError as err:
        raise Refused(
            f"not an agentplex.v1.Envelope in JSON ({err}); data not starting with '{{' "
            "is taken as a raw payload"
        ) from None
    if not env.channel:
        env.channel = channel
    elif env.channel != channel:
        raise Refused(
            f"envelope.channel {env.channel!r} differs from {channel!r}, the channel it was "
            "published to"
        )
    return env


def decode_frame(data: bytes) -> ss.ConnectRequest:
    """A client session frame (agentplex.v1.ConnectRequest in JSON)."""
    frame = ss.ConnectRequest()
    try:
        json_format.Parse(data, frame)
    except json_format.ParseError as err:
        raise Refused(
            f"frame: not an agentplex.v1.ConnectRequest in JSON ({err})", _ref_of(data)
        ) from None
    return frame


def _ref_of(data: bytes) -> str:
    """The `ref` of a frame that did not parse, if it is readable at all."""
    try:
        ref = json.loads(data).get("ref", "")
    except (ValueError, AttributeError):
        return ""
    return ref if isinstance(ref, str) else ""
