"""Hand-assembled delivery frames must be exactly what protobuf itself reads and writes."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from agentplex.core import framing, wire
from agentplex.core.channel_log import Accepted
from agentplex.core.outbox import Item
from agentplex.v1 import envelope_pb2, messaging_service_pb2, session_service_pb2

ConnectResponse = session_service_pb2.ConnectResponse
SubscribeResponse = messaging_service_pb2.SubscribeResponse

UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1


def read_varint(data: bytes, pos: int = 0) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def accepted(
    envelope_id: str = "m1",
    seq: int = 1,
    payload: bytes = b"hello",
    headers: dict[str, str] | None = None,
    channel: str = "jobs",
) -> Accepted:
    env = envelope_pb2.Envelope(
        id=envelope_id,
        channel=channel,
        sender="agent-1",
        content_type="text/plain",
        payload=payload,
        headers=headers or {},
        sha256=hashlib.sha256(payload).hexdigest(),
    )
    env.position.seq = seq
    env.position.epoch = "ep"
    env.created_at.FromNanoseconds(1_700_000_000_123_456_789)
    return Accepted(env, seq, "ep", 0)


def expected_deliveries(items: list[tuple[Accepted, int]]) -> envelope_pb2.Deliveries:
    return envelope_pb2.Deliveries(
        deliveries=[envelope_pb2.Delivery(envelope=e.envelope, attempt=a) for e, a in items]
    )


# --- varint and field headers -------------------------------------------------------------------


@settings(max_examples=200)
@given(n=st.integers(min_value=1, max_value=UINT64_MAX))
def test_varint_matches_protobuf(n: int) -> None:
    encoded = envelope_pb2.StreamPosition(seq=n).SerializeToString()
    assert encoded == b"\x08" + wire.varint(n)
    assert read_varint(wire.varint(n)) == (n, len(wire.varint(n)))


@pytest.mark.parametrize("n", [0, 1, 127, 128, 255, 16383, 16384, 2**21, 2**32 - 1, UINT64_MAX])
def test_varint_boundaries(n: int) -> None:
    encoded = wire.varint(n)
    assert read_varint(encoded) == (n, len(encoded))
    assert len(encoded) == max(1, (n.bit_length() + 6) // 7)
    assert all(b & 0x80 for b in encoded[:-1]) and encoded[-1] < 0x80


@settings(max_examples=200)
@given(
    number=st.integers(min_value=1, max_value=2**29 - 1),
    length=st.integers(min_value=0, max_value=2**32),
)
def test_field_header(number: int, length: int) -> None:
    header = wire.field_header(number, length)
    tag, pos = read_varint(header)
    assert (tag >> 3, tag & 7) == (number, 2)
    assert read_varint(header, pos) == (length, len(header))


@settings(max_examples=100)
@given(text=st.text(max_size=300))
def test_field_header_matches_protobuf_string_field(text: str) -> None:
    data = text.encode()
    encoded = envelope_pb2.Envelope(channel=text).SerializeToString()  # channel is field 2
    assert encoded == (wire.field_header(2, len(data)) + data if data else b"")


# --- delivery frames ----------------------------------------------------------------------------

envelopes = st.builds(
    accepted,
    envelope_id=st.text(max_size=20),
    seq=st.integers(min_value=1, max_value=UINT64_MAX),
    payload=st.binary(max_size=300),
    headers=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
    channel=st.text(alphabet="abc.-", min_size=1, max_size=20),
)
delivery_lists = st.lists(
    st.tuples(envelopes, st.integers(min_value=1, max_value=UINT32_MAX)), max_size=8
)


@settings(max_examples=150)
@given(items=delivery_lists)
def test_connect_response_deliveries_parse(items: list[tuple[Accepted, int]]) -> None:
    frame = wire.deliveries_frame(3, [wire.delivery(e, a) for e, a in items])
    parsed = ConnectResponse.FromString(frame)
    assert parsed.WhichOneof("frame") == "deliveries"
    assert parsed.ref == ""
    assert parsed.deliveries == expected_deliveries(items)
    assert [d.attempt for d in parsed.deliveries.deliveries] == [a for _, a in items]
    assert parsed == ConnectResponse(deliveries=expected_deliveries(items))


@settings(max_examples=150)
@given(items=delivery_lists)
def test_subscribe_response_deliveries_parse(items: list[tuple[Accepted, int]]) -> None:
    frame = wire.deliveries_frame(1, [wire.delivery(e, a) for e, a in items])
    parsed = SubscribeResponse.FromString(frame)
    assert parsed.WhichOneof("response") == "deliveries"
    assert parsed == SubscribeResponse(deliveries=expected_deliveries(items))


@settings(max_examples=150)
@given(
    items=st.lists(
        st.tuples(
            st.builds(
                accepted,
                envelope_id=st.text(max_size=20),
                seq=st.integers(min_value=1, max_value=UINT64_MAX),
                payload=st.binary(max_size=300),
                # At most one header: protobuf does not promise an order for map entries.
                headers=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=1),
            ),
            st.integers(min_value=1, max_value=UINT32_MAX),
        ),
        max_size=6,
    )
)
def test_frames_are_byte_identical_to_protobuf(items: list[tuple[Accepted, int]]) -> None:
    parts = [wire.delivery(e, a) for e, a in items]
    built = ConnectResponse(deliveries=expected_deliveries(items)).SerializeToString()
    assert wire.deliveries_frame(3, parts) == built
    built_sub = SubscribeResponse(deliveries=expected_deliveries(items)).SerializeToString()
    assert wire.deliveries_frame(1, parts) == built_sub
    for (e, a), part in zip(items, parts, strict=True):
        one = envelope_pb2.Deliveries(
            deliveries=[envelope_pb2.Delivery(envelope=e.envelope, attempt=a)]
        )
        assert part == one.SerializeToString()


def test_empty_deliveries_frame_is_an_empty_deliveries_message() -> None:
    frame = wire.deliveries_frame(3, [])
    assert frame == ConnectResponse(deliveries=envelope_pb2.Deliveries()).SerializeToString()
    parsed = ConnectResponse.FromString(frame)
    assert parsed.HasField("deliveries") and len(parsed.deliveries.deliveries) == 0


def test_large_envelope_uses_multibyte_lengths() -> None:
    item = (accepted(payload=b"x" * 70_000), 300)
    frame = wire.deliveries_frame(3, [wire.delivery(*item)])
    assert frame == ConnectResponse(deliveries=expected_deliveries([item])).SerializeToString()


# --- framing ------------------------------------------------------------------------------------


def ping(ref: str) -> ConnectResponse:
    return ConnectResponse(ref=ref, ping=session_service_pb2.Ping())


def describe(out: list[Any]) -> list[Any]:
    """Frames as comparable values: ("D", [(id, attempt)...]) or the control object."""
    result: list[Any] = []
    for frame in out:
        if isinstance(frame, bytes):
            parsed = ConnectResponse.FromString(frame)
            assert parsed.WhichOneof("frame") == "deliveries"
            result.append(("D", [(d.envelope.id, d.attempt) for d in parsed.deliveries.deliveries]))
        else:
            result.append(frame)
    return result


def reference(items: list[Item], max_bytes: int, drop: set[str]) -> list[Any]:
    """The specification: each run of deliveries between control items is cut greedily into
    frames that never go over max_bytes (a delivery larger than that travels alone); control
    items keep their place."""
    out: list[Any] = []
    run: list[tuple[Accepted, int]] = []

    def flush_run() -> None:
        chunk: list[tuple[str, int]] = []
        size = 0
        for e, a in run:
            part = len(wire.delivery(e, a))
            if chunk and size + part > max_bytes:
                out.append(("D", chunk))
                chunk, size = [], 0
            chunk.append((e.envelope.id, a))
            size += part
        if chunk:
            out.append(("D", chunk))
        run.clear()

    for item in items:
        if isinstance(item, tuple):
            run.append(item)
        else:
            flush_run()
            if item.ref not in drop:
                out.append(item)
    flush_run()
    return out


item_strategy = st.one_of(
    st.tuples(
        st.builds(
            accepted,
            envelope_id=st.text(alphabet="xyz", min_size=1, max_size=4),
            payload=st.binary(max_size=200),
        ),
        st.integers(min_value=1, max_value=5),
    ),
    st.builds(ping, st.sampled_from(["keep1", "keep2", "drop"])),
)


@settings(max_examples=200)
@given(
    items=st.lists(item_strategy, max_size=25),
    max_bytes=st.integers(min_value=1, max_value=1500),
)
def test_frames_split_at_max_bytes_and_keep_control_order(
    items: list[Item], max_bytes: int
) -> None:
    out = framing.frames(
        items, 3, control=lambda f: None if f.ref == "drop" else f, max_bytes=max_bytes
    )
    assert describe(out) == reference(items, max_bytes, {"drop"})
    for frame in out:
        if isinstance(frame, bytes):
            parts = ConnectResponse.FromString(frame).deliveries.deliveries
            sizes = [
                len(envelope_pb2.Deliveries(deliveries=[d]).SerializeToString()) for d in parts
            ]
            assert sizes, "no empty delivery frames"
            assert sum(sizes[:-1]) < max_bytes  # it was cut as soon as it reached the limit


def test_frames_default_control_passthrough_and_subscribe_field() -> None:
    e1, e2 = accepted("a", 1), accepted("b", 2)
    control = ping("r")
    out = framing.frames([(e1, 1), control, (e2, 2)], 1)
    assert out[1] is control
    assert SubscribeResponse.FromString(out[0]) == SubscribeResponse(
        deliveries=expected_deliveries([(e1, 1)])
    )
    assert SubscribeResponse.FromString(out[2]) == SubscribeResponse(
        deliveries=expected_deliveries([(e2, 2)])
    )
    assert framing.frames([], 3) == []


def test_frames_batch_a_run_into_one_frame_under_the_limit() -> None:
    items: list[Item] = [(accepted(f"m{i}", i + 1), 1) for i in range(50)]
    out = framing.frames(items, 3)
    assert len(out) == 1
    assert describe(out) == [("D", [(f"m{i}", 1) for i in range(50)])]


def test_frames_oversized_delivery_goes_alone() -> None:
    big = (accepted("big", payload=b"x" * 5000), 1)
    small = (accepted("small"), 1)
    out = framing.frames([small, big, small, small], 3, max_bytes=1000)
    assert describe(out) == [
        ("D", [("small", 1)]),
        ("D", [("big", 1)]),
        ("D", [("small", 1), ("small", 1)]),
    ]


def test_frame_never_goes_over_max_bytes() -> None:
    runs = [(accepted(f"m{i}", i + 1), 1) for i in range(4)]
    part = len(wire.delivery(*runs[0]))  # every part has the same size
    assert all(len(wire.delivery(*item)) == part for item in runs)
    items: list[Item] = list(runs)
    ids = [("m0", 1), ("m1", 1), ("m2", 1), ("m3", 1)]
    assert describe(framing.frames(items, 3, max_bytes=2 * part)) == [
        ("D", ids[:2]),
        ("D", ids[2:]),
    ]
    assert describe(framing.frames(items, 3, max_bytes=3 * part - 1)) == [
        ("D", ids[:2]),
        ("D", ids[2:]),
    ]
    assert describe(framing.frames(items, 3, max_bytes=part)) == [("D", [i]) for i in ids]


@pytest.mark.parametrize("duplicate", [False, True])
def test_publish_result_and_receipt_encode_like_protobuf(duplicate: bool) -> None:
    from agentplex.core import wire as w
    from agentplex.v1 import envelope_pb2 as e, messaging_service_pb2 as m, session_service_pb2 as s

    named = [e.Envelope(id="id-1", channel="chan.é")]
    [body] = w.publish_results([(300, "ep0ch", "ab" * 32, duplicate)], named)
    expected = e.PublishResult(
        id="id-1",
        channel="chan.é",
        position=e.StreamPosition(seq=300, epoch="ep0ch"),
        sha256="ab" * 32,
        duplicate=duplicate,
    )
    assert e.PublishResult.FromString(body) == expected
    batch = m.PublishBatchResponse.FromString(w.repeated(1, [body, body]))
    assert list(batch.results) == [expected, expected]
    receipt = s.ConnectResponse.FromString(w.publish_receipt("r7", [body]))
    assert receipt.ref == "r7" and list(receipt.receipt.published) == [expected]


def test_unnamed_results_equal_named_results_without_id_and_channel() -> None:
    from agentplex.core import wire as w

    outcomes = [(1, "e1", "a" * 64, False), (200, "e2", "b" * 64, True), (3, "e1", "c" * 64, False)]
    unnamed_envelopes = [envelope_pb2.Envelope() for _ in outcomes]  # empty id and channel
    assert w.publish_results(outcomes) == w.publish_results(outcomes, unnamed_envelopes)


def test_first_delivery_encoding_is_shared_and_later_attempts_are_not_cached() -> None:
    from agentplex.core import wire as w
    from agentplex.core.channel_log import Accepted
    from agentplex.v1 import envelope_pb2 as e

    env = e.Envelope(channel="c", payload=b"p", position=e.StreamPosition(seq=1, epoch="x"))
    entry = Accepted(env, 1, "x", 0)
    first = w.delivery(entry, 1)
    assert w.delivery(entry, 1) is first
    second = w.delivery(entry, 2)
    assert second != first and w.delivery(entry, 1) is first
    frame = e.Deliveries.FromString(first + second)
    assert [d.attempt for d in frame.deliveries] == [1, 2]
    assert frame.deliveries[0].envelope == env


@given(
    sizes=st.lists(st.integers(0, 300), max_size=40),
    max_bytes=st.integers(1, 1000),
    max_count=st.integers(1, 10),
)
def test_runs_keep_order_and_bounds(sizes: list[int], max_bytes: int, max_count: int) -> None:
    items = [b"x" * n for n in sizes]
    runs = framing.runs(items, len, max_bytes, max_count)
    assert [item for run in runs for item in run] == items  # nothing lost, nothing reordered
    for run in runs:
        assert 1 <= len(run) <= max_count
        # Over the byte bound only as a lone item too big for any run.
        assert len(run) == 1 or sum(len(i) + 8 for i in run) <= max_bytes


@given(st.lists(st.sampled_from(["ping", "receipt", "error", "drain"]), min_size=1, max_size=30))
def test_batch_frames_read_back_as_the_frames_in_order(kinds: list[str]) -> None:
    frames = [
        ConnectResponse(ref=f"r{i}", **{kind: {}}).SerializeToString()  # type: ignore[arg-type]
        for i, kind in enumerate(kinds)
    ]
    out = framing.batched(frames, framing.CONNECT_BATCH, max_count=7)
    read: list[ConnectResponse] = []
    for data in out:
        frame = ConnectResponse.FromString(data)
        read += frame.batch.frames if frame.WhichOneof("frame") == "batch" else [frame]
    assert [f.SerializeToString() for f in read] == frames
    assert len(out) == -(-len(frames) // 7)  # as few messages as the limit allows
    if len(frames) == 1:
        assert out == frames  # a frame alone is not wrapped
