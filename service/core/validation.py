"""Input checks at the door. Each failure names the field and the limit it broke."""

from __future__ import annotations

import re
from collections.abc import Mapping

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from agentplex.core.globmatch import is_pattern
from agentplex.core.limits import Limits
from agentplex.errors import HubError, InvalidArgument, ResourceExhausted
from agentplex.v1 import agent_pb2, envelope_pb2

CHANNEL_MAX = 200
_CHANNEL = re.compile(r"[A-Za-z0-9_.:\-]{1,200}")
_PATTERN = re.compile(r"[A-Za-z0-9_.:\-*?\[\]^\\]{1,200}")
_ID = re.compile(r"[A-Za-z0-9_.:\-]+")
INBOX_PREFIX = "agent."
SYSTEM_PREFIX = "_"
# What RFC 3339 can write (0001-01-01 to 9999-12-31), so every transport can carry the value.
TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)


def check_channel(name: str, field: str = "channel") -> str:
    """A concrete channel name: 1 to 200 of `[A-Za-z0-9_.:-]`."""
    if _CHANNEL.fullmatch(name) is None:
        raise InvalidArgument(
            f"{field}: {name!r} is not a valid channel name "
            f"(1 to {CHANNEL_MAX} characters of A-Z a-z 0-9 _ . : -)"
        )
    return name


def check_subscription(name: str, field: str = "channels") -> str:
    """A channel name or a Redis glob pattern over channel names."""
    if is_pattern(name):
        if _PATTERN.fullmatch(name) is None:
            raise InvalidArgument(
                f"{field}: {name!r} is not a valid channel pattern (1 to {CHANNEL_MAX} "
                "characters of channel-name characters and the glob syntax * ? [ ] ^ \\)"
            )
        return name
    return check_channel(name, field)


def valid_id(value: str, limits: Limits) -> bool:
    return len(value) <= limits.max_id_length and _ID.fullmatch(value) is not None


def check_id(value: str, field: str, limits: Limits, *, required: bool = False) -> str:
    if not value:
        if required:
            raise InvalidArgument(f"{field} is required")
        return value
    if not valid_id(value, limits):
        raise InvalidArgument(
            f"{field}: {value[:50]!r} must be 1 to {limits.max_id_length} characters of "
            "A-Z a-z 0-9 _ . : - (limits.max_id_length)"
        )
    return value


def check_text(value: str, field: str, limits: Limits) -> str:
    if len(value) > limits.max_text_length:
        raise InvalidArgument(
            f"{field} is {len(value)} characters, over the limit of {limits.max_text_length} "
            "(limits.max_text_length)"
        )
    return value


def check_timestamp(value: Timestamp, field: str) -> None:
    """A time the JSON transports can write: protobuf takes any numbers, canonical JSON only
    a valid RFC 3339 time, and a message JSON cannot encode would fail every JSON receiver."""
    low, high = TIMESTAMP_SECONDS
    if not low <= value.seconds <= high or not 0 <= value.nanos <= 999_999_999:
        raise InvalidArgument(
            f"{field}: seconds {value.seconds}, nanos {value.nanos} is no time between "
            "0001-01-01 and 9999-12-31 (seconds from the Unix epoch, nanos 0 to 999999999)"
        )


def check_map(
    values: Mapping[str, str],
    field: str,
    limits: Limits,
    max_entries: int,
    setting: str,
    holder: Message | None = None,
) -> None:
    """Entry count and total size of a map field. When its `holder` message is encoded in no
    more than `limits.max_header_bytes`, the map fits too and its entries need not be summed
    (reading a protobuf map entry by entry is slow)."""
    count = len(values)
    if count > max_entries:
        raise InvalidArgument(
            f"{field} has {count} entries, over the limit of {max_entries} ({setting})"
        )
    if not count or (holder is not None and holder.ByteSize() <= limits.max_header_bytes):
        return
    size = sum(len(k) + len(v) for k, v in values.items())
    if size > limits.max_header_bytes:
        raise ResourceExhausted(
            f"{field} total {size} bytes, over the limit of {limits.max_header_bytes} "
            "(limits.max_header_bytes)"
        )


def check_envelope(
    env: envelope_pb2.Envelope, limits: Limits, index: int | None = None, channel_ok: bool = False
) -> None:
    """Check what a publisher controls; hub-set fields (sender, position, sha256) are replaced.
    `index` names the envelope in a batch; `channel_ok` skips a channel already checked."""
    try:
        _check_envelope(env, limits, "envelope", channel_ok)
    except HubError:
        if index is None:
            raise
        # Name the envelope by its place in the batch; built only when something is wrong.
        _check_envelope(env, limits, f"envelopes[{index}]", channel_ok)


def _check_envelope(
    env: envelope_pb2.Envelope, limits: Limits, field: str, channel_ok: bool
) -> None:
    if not channel_ok:
        check_channel(env.channel, f"{field}.channel")
    if len(env.payload) > limits.max_payload_bytes:
        raise ResourceExhausted(
            f"{field}.payload is {len(env.payload)} bytes, over the limit of "
            f"{limits.max_payload_bytes} (limits.max_payload_bytes)"
        )
    envelope_id = env.id
    if envelope_id and not valid_id(envelope_id, limits):
        check_id(envelope_id, f"{field}.id", limits)  # raises; the field named only then
    if env.headers:
        check_map(
            env.headers, f"{field}.headers", limits, limits.max_headers, "limits.max_headers", env
        )
    if env.reply_to:
        check_channel(env.reply_to, f"{field}.reply_to")
    if env.HasField("created_at"):
        check_timestamp(env.created_at, f"{field}.created_at")
    if len(env.content_type) > 200:
        raise InvalidArgument(f"{field}.content_type is longer than 200 characters")
    if len(env.correlation_id) > limits.max_id_length:
        raise InvalidArgument(
            f"{field}.correlation_id is longer than {limits.max_id_length} characters "
            "(limits.max_id_length)"
        )


def check_batch_size(count: int, limits: Limits, field: str = "envelopes") -> None:
    if count == 0:
        raise InvalidArgument(f"{field} is empty: send at least one envelope")
    if count > limits.max_batch:
        raise ResourceExhausted(
            f"{field} holds {count} envelopes, over the limit of {limits.max_batch} "
            "(limits.max_batch)"
        )


def check_enum(value: int, enum: type, field: str, *, allow_unspecified: bool = True) -> None:
    """Refuse numbers the schema does not define (proto3 keeps unknown enum values)."""
    names = enum.DESCRIPTOR.values_by_number  # type: ignore[attr-defined]
    if value not in names or (value == 0 and not allow_unspecified):
        valid = ", ".join(v.name for v in enum.DESCRIPTOR.values if v.number)  # type: ignore[attr-defined]
        raise InvalidArgument(f"{field}: {value} is not one of {valid}")


def check_card(card: agent_pb2.AgentCard, limits: Limits) -> None:
    check_id(card.id, "card.id", limits)
    check_text(card.name, "card.name", limits)
    check_text(card.version, "card.version", limits)
    check_enum(card.kind, agent_pb2.AgentKind, "card.kind")
    if len(card.capabilities) > limits.max_capabilities:
        raise InvalidArgument(
            f"card.capabilities has {len(card.capabilities)} entries, over the limit of "
            f"{limits.max_capabilities} (limits.max_capabilities)"
        )
    for i, cap in enumerate(card.capabilities):
        if not cap or len(cap) > 100 or not cap.isprintable() or " " in cap:
            raise InvalidArgument(
                f"card.capabilities[{i}]: {cap[:50]!r} must be 1 to 100 printable characters "
                "without spaces"
            )
    check_map(card.labels, "card.labels", limits, limits.max_labels, "limits.max_labels", card)


def is_inbox(channel: str) -> bool:
    return channel.startswith(INBOX_PREFIX)


def inbox_of(agent_id: str) -> str:
    return INBOX_PREFIX + agent_id


def inbox_owner(channel: str) -> str:
    """The agent id of an inbox channel `agent.<id>`."""
    return channel[len(INBOX_PREFIX) :]


def is_system(channel: str) -> bool:
    return channel.startswith(SYSTEM_PREFIX)
