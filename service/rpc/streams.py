"""The writer half of a server stream: drain an outbox into frames until it closes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from agentplex.core.framing import frames
from agentplex.core.outbox import Outbox


async def write_outbox(
    outbox: Outbox,
    context: grpc.aio.ServicerContext[Any, Any],
    *,
    deliveries_field: int,
    control: Callable[[Any], Any] = lambda frame: frame,
    batch: Callable[[list[Any]], list[Any]] = lambda out: out,
) -> None:
    """Write until the outbox closes; a close with a status code ends the call with it. What
    is ready at once goes through `batch` (see `framing.batched`): a gRPC message costs far
    more than its bytes."""
    while True:
        items = await outbox.take()
        if not items:
            break
        out = frames(items, deliveries_field, control)
        for frame in batch(out) if len(out) > 1 else out:
            await context.write(frame)
    if outbox.code is not None:
        await context.abort(outbox.code, outbox.reason)
