"""Turn a batch of outbox items into the frames a stream writes: runs of deliveries become one
`Deliveries` frame each (up to a size), control frames pass through in order."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from agentplex.core import wire
from agentplex.core.channel_log import Accepted
from agentplex.core.outbox import Item

# A frame of deliveries stays under 1 MiB, the default message limit of gRPC and of most
# WebSocket clients (a few KiB are left for the frame's own fields).
MAX_FRAME_BYTES = 1024 * 1024 - 4096


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
