"""Frames of deliveries assembled from each envelope's one-time encoding.

An accepted envelope is serialized once (`Accepted.wire`). A frame that carries deliveries to a
subscriber is built by concatenating those bytes behind protobuf field headers, so fan-out to N
subscribers costs N small byte joins, not N envelope encodings. The layout is protobuf's own:
`Deliveries{repeated Delivery deliveries = 1}`, `Delivery{Envelope envelope = 1; uint32 attempt
= 2}`, wrapped in whichever frame field (`ConnectResponse.deliveries = 3`,
`SubscribeResponse.deliveries = 1`) the stream uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from agentplex.core.channel_log import Accepted
from agentplex.v1 import envelope_pb2

_SMALL = [bytes([n]) for n in range(128)]


def varint(n: int) -> bytes:
    """Protobuf's base-128 encoding; up to four bytes (seq numbers, lengths) without a loop."""
    if n < 128:
        return _SMALL[n]
    if n < 16384:
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    if n < 2097152:
        return bytes(((n & 0x7F) | 0x80, (n >> 7 & 0x7F) | 0x80, n >> 14))
    if n < 268435456:
        return bytes(((n & 0x7F) | 0x80, (n >> 7 & 0x7F) | 0x80, (n >> 14 & 0x7F) | 0x80, n >> 21))
    out = bytearray()
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field_header(number: int, length: int) -> bytes:
    """Tag and length of a length-delimited field."""
    return varint(number << 3 | 2) + varint(length)


def with_position(envelope: bytes, seq: int, epoch: str) -> bytes:
    """An encoded envelope (without a position) with its `position` (field 10) appended: the
    envelope as accepted, made without decoding and encoding it again."""
    epoch_bytes = epoch.encode()
    body = b"\x08" + varint(seq) + b"\x12" + varint(len(epoch_bytes)) + epoch_bytes
    return envelope + field_header(10, len(body)) + body


def delivery(entry: Accepted, attempt: int) -> bytes:
    """One encoded `Deliveries.deliveries` element (tag included). The first attempt's encoding
    is kept on the entry: every subscriber of a message shares it."""
    if attempt == 1 and entry.first_delivery:
        return entry.first_delivery
    wire = entry.wire
    body = b"\x0a" + varint(len(wire)) + wire + b"\x10" + varint(attempt)
    encoded = b"\x0a" + varint(len(body)) + body
    if attempt == 1:
        entry.first_delivery = encoded
    return encoded


def deliveries_frame(field_number: int, parts: Iterable[bytes]) -> bytes:
    """A frame whose field `field_number` is a `Deliveries` made of encoded `delivery` parts."""
    body = b"".join(parts)
    return field_header(field_number, len(body)) + body


def _text(tag: bytes, value: str) -> bytes:
    """A string field; empty (protobuf's default) is left out."""
    if not value:
        return b""
    data = value.encode()
    return tag + varint(len(data)) + data


def publish_results(
    outcomes: Iterable[tuple[int, str, str, bool]],
    envelopes: Sequence[envelope_pb2.Envelope] | None = None,
) -> list[bytes]:
    """Encoded `PublishResult` bodies (no tag) for a published batch, built without a message
    object per envelope. With `envelopes`, each result names its envelope's id and channel;
    without, they are left out (PublishBatchResponse: the client knows them by index). An
    epoch's encoding is made once per batch."""
    epochs: dict[str, bytes] = {}
    out = []
    for i, (seq, epoch, sha256, duplicate) in enumerate(outcomes):
        epoch_field = epochs.get(epoch)
        if epoch_field is None:
            epoch_field = epochs[epoch] = _text(b"\x12", epoch)
        position = b"\x08" + varint(seq) + epoch_field
        body = b"\x1a" + varint(len(position)) + position + _text(b"\x22", sha256)
        if duplicate:
            body += b"\x28\x01"
        if envelopes is not None:
            env = envelopes[i]
            body = _text(b"\x0a", env.id) + _text(b"\x12", env.channel) + body
        out.append(body)
    return out


def repeated(field_number: int, bodies: Iterable[bytes]) -> bytes:
    """Encoded bodies as a repeated message field."""
    tag = varint(field_number << 3 | 2)
    return b"".join([tag + varint(len(body)) + body for body in bodies])


def message(number: int, body: bytes) -> bytes:
    """A length-delimited field: an embedded message, bytes or UTF-8 text."""
    return field_header(number, len(body)) + body


def map_entry(number: int, key: str, value: str) -> bytes:
    """One entry of a `map<string, string>` field: maps are repeated key/value messages."""
    return message(number, _text(b"\x0a", key) + _text(b"\x12", value))


PROTOBUF = "application/x-protobuf"  # the content type of the hub's own event envelopes


def event_envelope(channel: str, event_type: str) -> bytes:
    """What every envelope of one of the hub's event channels shares, encoded: its channel,
    content type and `type` header. An event's envelope is this, then any headers of its own
    (`map_entry(6, ...)`) and its payload (`message(5, ...)`): the event is never copied."""
    return envelope_pb2.Envelope(
        channel=channel, content_type=PROTOBUF, headers={"type": event_type}
    ).SerializeToString()


def publish_receipt(ref: str, results: list[bytes]) -> bytes:
    """`ConnectResponse{ref, receipt: Receipt{published: results}}`."""
    receipt = repeated(1, results)
    return _text(b"\x0a", ref) + field_header(6, len(receipt)) + receipt
