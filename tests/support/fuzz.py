"""Hostile input for the fuzz tests of every decoder the outside world reaches: JSON of any
shape, JSON shaped like a protobuf message (its own field names) with values right or wrong for
each field, messages holding values only protobuf can carry, and valid protobuf encodings cut
short or corrupted."""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor as F
from google.protobuf.message import Message
from hypothesis import HealthCheck, settings, strategies as st

# Moderate, so the fuzz files together run in well under a minute; applied per test, not loaded
# as a global profile.
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Integers at and just past every protobuf width, and far beyond.
EDGE_INTS = [0, -1, 2**31 - 1, 2**31, -(2**31) - 1, 2**32, 2**63, -(2**63) - 1, 2**64, 10**30]
wide_ints = st.integers() | st.sampled_from(EDGE_INTS)
numbers_as_text = st.sampled_from(
    ["1e30", "NaN", "Infinity", "-0", "0x10", "1.5", "", " 7", "\u0663", "1_0"]
) | wide_ints.map(str)
surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1)
long_text = st.integers(1000, 5000).map(lambda n: "a" * n)
hostile_text = st.text(max_size=40) | surrogates | long_text | st.sampled_from(["", "\x00"])

json_scalars = st.none() | st.booleans() | wide_ints | st.floats() | hostile_text
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

_INT_RANGES = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1),
    F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1),
    F.TYPE_FIXED64: (0, 2**64 - 1),
}
_RFC3339 = st.datetimes().map(lambda d: d.isoformat() + "Z")
_BAD_TIMES = st.sampled_from(
    ["99999-01-01T00:00:00Z", "2020-13-01T00:00:00Z", "2020-01-01T00:00:00.1234567891Z", "now"]
)


@functools.cache
def shaped(message: Descriptor, *, wrong: bool = True, depth: int = 3) -> st.SearchStrategy[Any]:
    """JSON objects with `message`'s own field names. With `wrong`, any value may be of the
    wrong type or out of range and stray keys appear; without, the object is a valid
    proto3 JSON form of the message (at most one member of each oneof)."""
    plain = {f.json_name: _field(f, wrong, depth) for f in message.fields if not f.containing_oneof}
    objects = st.fixed_dictionaries({}, optional=plain)
    for oneof in message.oneofs:
        members = [
            st.fixed_dictionaries({f.json_name: _field(f, wrong, depth)}) for f in oneof.fields
        ]
        objects = st.tuples(objects, st.just({}) | st.one_of(members)).map(_merged)
    if wrong:
        names = st.sampled_from([f.name for f in message.fields] or [""]) | st.text(max_size=8)
        objects = st.tuples(objects, st.dictionaries(names, json_values, max_size=1)).map(_merged)
    return objects


def valid_messages(message: type[Message]) -> st.SearchStrategy[Message]:
    """Messages of a type, made by parsing valid JSON forms of it."""
    return shaped(message.DESCRIPTOR, wrong=False).map(
        lambda d: json_format.ParseDict(d, message())
    )


def messages(message: type[Message]) -> st.SearchStrategy[Message]:
    """Messages built field by field with any value protobuf holds, though JSON may not: enum
    numbers the schema lacks, times past year 9999, strings of any length and character (but
    lone surrogates, which a protobuf string cannot hold)."""
    return _kwargs(message.DESCRIPTOR, 3).map(lambda kwargs: message(**kwargs))


@st.composite
def corrupted(draw: st.DrawFn, seeds: st.SearchStrategy[Message]) -> bytes:
    """A message's encoding with a few bytes cut, flipped, inserted or dropped."""
    data = bytearray(draw(seeds).SerializeToString())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        match draw(st.sampled_from(["cut", "flip", "insert", "drop"])):
            case "cut":
                del data[at:]
            case "flip" if at < len(data):
                data[at] ^= draw(st.integers(1, 255))
            case "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=10))
            case "drop":
                del data[at : at + draw(st.integers(1, 4))]
    return bytes(data)


def echoed_ref(data: str | bytes) -> str:
    """The ref an answer to a JSON frame echoes: the `ref` of an object that is readable, when
    it is a string protobuf can hold (JSON may escape a lone surrogate, protobuf cannot hold
    one); else ""."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return ""
    is_object = isinstance(value, dict) and data.lstrip()[:1] in ("{", b"{")
    ref = value.get("ref", "") if is_object else ""
    if not isinstance(ref, str) or any(0xD800 <= ord(c) <= 0xDFFF for c in ref):
        return ""
    return ref


def _merged(parts: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    return {**parts[0], **parts[1]}


def _field(field: F, wrong: bool, depth: int) -> st.SearchStrategy[Any]:
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
        right: st.SearchStrategy[Any] = st.dictionaries(
            _single(key, wrong, depth).map(str), _single(value, wrong, depth), max_size=3
        )
    elif field.is_repeated:
        right = st.lists(_single(field, wrong, depth), max_size=3)
    else:
        right = _single(field, wrong, depth)
    return right | json_values if wrong else right


def _single(field: F, wrong: bool, depth: int) -> st.SearchStrategy[Any]:
    kind = field.type
    right: st.SearchStrategy[Any]
    if kind == F.TYPE_MESSAGE:
        if field.message_type.full_name == "google.protobuf.Timestamp":
            return _RFC3339 | _BAD_TIMES | hostile_text if wrong else _RFC3339
        right = shaped(field.message_type, wrong=wrong, depth=depth - 1) if depth else st.just({})
    elif kind == F.TYPE_ENUM:
        values = field.enum_type.values
        right = st.sampled_from([v.name for v in values] + [v.number for v in values])
    elif kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        ints = st.integers(low, high)
        right = ints | ints.map(str)
    elif kind == F.TYPE_BOOL:
        right = st.booleans()
    elif kind == F.TYPE_STRING:
        right = st.text(max_size=20)
    elif kind == F.TYPE_BYTES:
        right = st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode())
    else:  # float, double
        finite = st.floats(width=32, allow_nan=False, allow_infinity=False)
        right = finite | st.sampled_from(["NaN", "Infinity", "-Infinity"])
    if not wrong:
        return right
    return right | wide_ints | numbers_as_text | hostile_text | st.floats()


@functools.cache
def _kwargs(message: Descriptor, depth: int) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={f.name: _any(f, depth) for f in message.fields})


def _any(field: F, depth: int) -> st.SearchStrategy[Any]:
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
        return st.dictionaries(_any_one(key, depth), _any_one(value, depth), max_size=3)
    if field.is_repeated:
        return st.lists(_any_one(field, depth), max_size=3)
    return _any_one(field, depth)


def _any_one(field: F, depth: int) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == F.TYPE_MESSAGE:
        return _kwargs(field.message_type, depth - 1) if depth else st.just({})
    if kind == F.TYPE_ENUM:
        numbers = [v.number for v in field.enum_type.values]
        return st.integers(-(2**31), 2**31 - 1) | st.sampled_from(numbers)
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        return st.integers(low, high) | st.sampled_from([low, high, 0])
    if kind == F.TYPE_BOOL:
        return st.booleans()
    if kind == F.TYPE_STRING:
        return st.text(max_size=30) | long_text | st.sampled_from(["", "\x00", " ", "\u202e"])
    if kind == F.TYPE_BYTES:
        return st.binary(max_size=64)
    return st.floats(width=32 if kind == F.TYPE_FLOAT else 64)
