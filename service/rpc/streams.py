"""The writer half of a server stream: drain an outbox into frames until it closes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from agentplex.core.framing import batched, frames
from agentplex.core.outbox import Outbox


async def write_outbox(
    outbox: Outbox,
    context: grpc.aio.ServicerContext[Any, Any],
    *,
    deliveries_field: int,
    control: Callable[[Any], Any] = lambda frame: frame,
    batch_field: int = 0,
    batches: Callable[[], bool] = lambda: False,
    batch_limit: int = 0,
) -> None:
    """Write until the outbox closes; a close with a status code ends the call with it. While
    `batches()` says the client reads them, what is ready goes out as batch frames
    (`batch_field`): a gRPC message costs far more than its bytes."""
    while True:
        items = await outbox.take()
        if not items:
            break
        out = frames(items, deliveries_field, control)
        if len(out) > 1 and batches():
            encoded = [f if type(f) is bytes else f.SerializeToString() for f in out]
            out = batched(encoded, batch_field, batch_limit)
        for frame in out:
            await context.write(frame)
    if outbox.code is not None:
        await context.abort(outbox.code, outbox.reason)
