"""Frames of deliveries assembled from each envelope's one-time encoding.

An accepted envelope is serialized once (`Accepted.wire`). A frame that carries deliveries to a
subscriber is built by concatenating those bytes behind protobuf field headers, so fan-out to N
subscribers costs N small byte joins, not N envelope encodings. The layout is protobuf's own:
`Deliveries{repeated Delivery deliveries = 1}`, `Delivery{Envelope envelope = 1; uint32 attempt
= 2}`, wrapped in whichever frame field (`ConnectResponse.deliveries = 3`,
`SubscribeResponse.deliveries = 1`) the stream uses.
"""

from __future__ import annotations

from collections.abc import Iterable

from agentplex.core.channel_log import Accepted

_SMALL = [bytes([n]) for n in range(128)]


def varint(n: int) -> bytes:
    if n < 128:
        return _SMALL[n]
    out = bytearray()
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field_header(number: int, length: int) -> bytes:
    """Tag and length of a length-delimited field."""
    return varint(number << 3 | 2) + varint(length)


def delivery(entry: Accepted, attempt: int) -> bytes:
    """One encoded `Deliveries.deliveries` element (tag included)."""
    wire = entry.wire
    body = b"\x0a" + varint(len(wire)) + wire + b"\x10" + varint(attempt)
    return b"\x0a" + varint(len(body)) + body


def deliveries_frame(field_number: int, parts: Iterable[bytes]) -> bytes:
    """A frame whose field `field_number` is a `Deliveries` made of encoded `delivery` parts."""
    body = b"".join(parts)
    return field_header(field_number, len(body)) + body
