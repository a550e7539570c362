"""Session frames on the wire for the edges: proto3 canonical JSON for text transports (WebSocket
text frames, Redis sessions) and protobuf for binary ones, with no I/O.

Deliveries are encoded once per message and encoding: the protobuf form is cached on the
accepted entry by `core.wire`, the JSON form here (`Accepted.json`), so fan-out to many
subscribers joins cached strings instead of encoding the envelope for each of them.
"""

from __future__ import annotations

import json

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from agentplex.core.channel_log import Accepted
from agentplex.core.framing import CONNECT_DELIVERIES, frames
from agentplex.core.outbox import Item
from agentplex.edges.envelope_json import envelope_json as encode_envelope
from agentplex.v1 import session_service_pb2 as ss

_NOT_JSON = "frame: not an agentplex.v1.ConnectRequest in JSON"


class Refused(ValueError):
    """Input an edge cannot take; `ref` echoes the frame's ref when it had a readable one."""

    def __init__(self, reason: str, ref: str = "") -> None:
        # Parse errors quote the input, where JSON may have escaped a lone surrogate: written
        # as an escape, the reason fits the error frame's (UTF-8) message.
        reason = reason.encode(errors="backslashreplace").decode()
        super().__init__(reason)
        self.reason = reason
        self.ref = ref


def to_json(message: Message) -> str:
    """Compact canonical JSON (lowerCamelCase names, base64 bytes, uint64 as strings)."""
    return json.dumps(json_format.MessageToDict(message), separators=(",", ":"))


def envelope_json(entry: Accepted) -> str:
    """An accepted envelope's JSON, made on first use and kept for every later one."""
    if not entry.json:
        entry.json = encode_envelope(entry.envelope)
    return entry.json


def _delivery(entry: Accepted, attempt: int) -> str:
    return f'{{"envelope":{envelope_json(entry)},"attempt":{attempt}}}'


def _pack(parts: list[str]) -> str:
    return '{"deliveries":{"deliveries":[' + ",".join(parts) + "]}}"


def json_frames(items: list[Item]) -> list[str]:
    """Outbox items as JSON `ConnectResponse` frames, runs of deliveries joined into one."""
    out = frames(items, CONNECT_DELIVERIES, to_json, delivery=_delivery, pack=_pack)
    return [f if isinstance(f, str) else to_json(ss.ConnectResponse.FromString(f)) for f in out]


def proto_frames(items: list[Item]) -> list[bytes]:
    """Outbox items as encoded `ConnectResponse` frames."""
    out = frames(items, CONNECT_DELIVERIES)
    return [f if isinstance(f, bytes) else f.SerializeToString() for f in out]


def parse_json_frame(data: str | bytes) -> ss.ConnectRequest:
    """A client frame: `agentplex.v1.ConnectRequest` in JSON. Only an object is one (json_format
    takes `[]` for an empty message and fails on other values with Python's own words)."""
    frame = ss.ConnectRequest()
    if data.lstrip()[:1] not in ("{", b"{"):
        raise Refused(f"{_NOT_JSON} (a frame is a JSON object)")
    try:
        json_format.Parse(data, frame)
    except (json_format.ParseError, UnicodeDecodeError) as err:  # bytes: from Redis sessions
        raise Refused(f"{_NOT_JSON} ({err})", _ref_of(data)) from None
    return frame


def parse_proto_frame(data: bytes) -> ss.ConnectRequest:
    """A client frame: an encoded `agentplex.v1.ConnectRequest`."""
    try:
        return ss.ConnectRequest.FromString(data)
    except DecodeError as err:
        raise Refused(f"frame: not an encoded agentplex.v1.ConnectRequest ({err})") from None


def _ref_of(data: str | bytes) -> str:
    """The `ref` of a JSON frame that did not parse, if it is readable at all and an error
    frame can echo it (JSON may escape a lone surrogate; a protobuf string cannot hold one)."""
    try:
        ref = json.loads(data).get("ref", "")
        ref.encode()
    except (ValueError, AttributeError, RecursionError):  # RecursionError: deep nesting
        return ""
    return ref if isinstance(ref, str) else ""
