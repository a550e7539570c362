"""Turn a batch of outbox items into the frames a stream writes: runs of deliveries become one
`Deliveries` frame each (up to a size), control frames pass through in order."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from agentplex.core import wire
from agentplex.core.channel_log import Accepted
from agentplex.core.outbox import Item
from agentplex.v1 import session_service_pb2 as ss

T = TypeVar("T")

# A frame of deliveries stays under 1 MiB, the default message limit of gRPC and of most
# WebSocket clients (a few KiB are left for the frame's own fields).
MAX_FRAME_BYTES = 1024 * 1024 - 4096
# The fields of a session stream's frame (`ConnectResponse`) that are assembled here.
CONNECT_DELIVERIES = ss.ConnectResponse.DESCRIPTOR.fields_by_name["deliveries"].number
CONNECT_BATCH = ss.ConnectResponse.DESCRIPTOR.fields_by_name["batch"].number


def frames(
    items: list[Item],
    deliveries_field: int,
    control: Callable[[Any], Any] = lambda frame: frame,
    max_bytes: int = MAX_FRAME_BYTES,
    *,
    delivery: Callable[[Accepted, int], Any] = wire.delivery,
    pack: Callable[[list[Any]], Any] | None = None,
) -> list[Any]:
    """Encoded delivery frames (bytes) and control frames (messages mapped by `control`, None
    drops one; pre-encoded frames pass unchanged). Another encoding (JSON) supplies its own
    `delivery` (one delivery, cached per message) and `pack` (a run of them into one frame)."""
    if pack is None:
        pack = functools.partial(wire.deliveries_frame, deliveries_field)
    out: list[Any] = []
    parts: list[Any] = []
    size = 0
    for item in items:
        if type(item) is tuple:
            part = delivery(item[0], item[1])
            if parts and size + len(part) > max_bytes:
                out.append(pack(parts))
                parts, size = [], 0
            parts.append(part)
            size += len(part)
            continue
        if parts:
            out.append(pack(parts))
            parts, size = [], 0
        mapped = item if type(item) is bytes else control(item)
        if mapped is not None:
            out.append(mapped)
    if parts:
        out.append(pack(parts))
    return out


def runs(items: list[T], size: Callable[[T], int], max_bytes: int, max_count: int) -> list[list[T]]:
    """Consecutive runs of `items`, each at most `max_count` long and `max_bytes` in total (an
    item over `max_bytes` alone is a run of its own)."""
    out: list[list[T]] = []
    run: list[T] = []
    total = 0
    for item in items:
        n = size(item) + 8  # with its tag and length inside a batch
        if run and (total + n > max_bytes or len(run) == max_count):
            out.append(run)
            run, total = [], 0
        run.append(item)
        total += n
    if run:
        out.append(run)
    return out


def batched(out: list[Any], batch_field: int, max_count: int) -> list[bytes]:
    """Frames (messages or encoded) joined into encoded batch frames (field `batch_field` of
    the frame message: a message whose field 1 repeats the frames) of up to `max_count` frames
    and `MAX_FRAME_BYTES`: one message to write where there were many. A frame that ends up
    alone is left as it is."""
    encoded = [f if type(f) is bytes else f.SerializeToString() for f in out]
    return [
        run[0] if len(run) == 1 else wire.message(batch_field, wire.repeated(1, run))
        for run in runs(encoded, len, MAX_FRAME_BYTES, max_count)
    ]
