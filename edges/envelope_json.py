"""An envelope's proto3 canonical JSON, written field by field.

`json_format` walks the descriptors for every field and spends about 14 µs on an envelope; every
message a JSON client or the Redis mirror receives pays that once. The envelope's schema is
small and fixed, so this writes the same JSON (same names, same value forms: base64 bytes,
uint64 as a string, RFC 3339 times, default values left out) directly, several times faster.
`tests/unit/test_envelope_json.py` holds it to `json_format` on arbitrary envelopes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime, timedelta

from agentplex.v1 import envelope_pb2

_UNIX = datetime(1970, 1, 1)
# A JSON string literal with non-ASCII escaped, as `edges.frames.to_json` writes it (C code).
_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii
_second: tuple[int, str] = (0, "1970-01-01T00:00:00")  # the last second written, and its text


def timestamp_text(seconds: int, nanos: int) -> str:
    """RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, as protobuf writes a Timestamp.
    Consecutive envelopes mostly share a second: its text is made once."""
    global _second
    if _second[0] == seconds:
        text = _second[1]
    else:
        text = (_UNIX + timedelta(seconds=seconds)).isoformat()
        _second = (seconds, text)
    if not nanos:
        return text + "Z"
    if not nanos % 1_000_000:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if not nanos % 1000:
        return f"{text}.{nanos // 1000:06d}Z"
    return f"{text}.{nanos:09d}Z"


def envelope_json(env: envelope_pb2.Envelope) -> str:
    """Compact canonical JSON of `env`, equal to `json_format`'s."""
    head, tail = json_parts(env)
    first = len(head) == 1  # nothing before the position: no comma ahead of what follows
    if not env.HasField("position"):
        return head + (tail[1:] if first and len(tail) > 1 else tail)
    position = env.position
    pos = []
    if position.seq:
        pos.append(f'"seq":"{position.seq}"')
    if position.epoch:
        pos.append('"epoch":' + _quote(position.epoch))
    return head + ("" if first else ",") + '"position":{' + ",".join(pos) + "}" + tail


def json_parts(env: envelope_pb2.Envelope) -> tuple[str, str]:
    """`env`'s JSON before and after its position (field 10 of 11, so it goes between), for
    whoever sets the position later: the Redis engine's publish script splices in
    `,"position":{"seq":"N","epoch":"E"}` (an accepted envelope has a channel ahead of it)."""
    out: list[str] = []
    if env.id:
        out.append('"id":' + _quote(env.id))
    if env.channel:
        out.append('"channel":' + _quote(env.channel))
    if env.sender:
        out.append('"sender":' + _quote(env.sender))
    if env.content_type:
        out.append('"contentType":' + _quote(env.content_type))
    if env.payload:
        out.append('"payload":"' + base64.b64encode(env.payload).decode() + '"')
    if env.headers:
        pairs = ",".join(_quote(k) + ":" + _quote(v) for k, v in env.headers.items())
        out.append('"headers":{' + pairs + "}")
    if env.correlation_id:
        out.append('"correlationId":' + _quote(env.correlation_id))
    if env.reply_to:
        out.append('"replyTo":' + _quote(env.reply_to))
    if env.HasField("created_at"):
        created = env.created_at
        out.append('"createdAt":"' + timestamp_text(created.seconds, created.nanos) + '"')
    return "{" + ",".join(out), (',"sha256":' + _quote(env.sha256) + "}" if env.sha256 else "}")
