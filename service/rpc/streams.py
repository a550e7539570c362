"""The writer half of a server stream: drain an outbox into frames until it closes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import grpc

from agentplex.background import cancel_and_wait
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


async def write_outbox_during(
    work: Coroutine[Any, Any, object],
    outbox: Outbox,
    context: grpc.aio.ServicerContext[Any, Any],
    **options: Any,
) -> None:
    """Run `work` (which fills `outbox`) while `write_outbox` drains it. Writing only after
    `work` would deadlock: a replay waits for room in the outbox, which only the writer makes.
    A failure of `work` ends the call with that error once what is queued is written; the end
    of the call cancels `work`."""
    task = asyncio.get_running_loop().create_task(work)

    def failed(done: asyncio.Task[object]) -> None:
        if not done.cancelled() and done.exception() is not None:
            outbox.close("the stream's work failed")

    task.add_done_callback(failed)
    try:
        await write_outbox(outbox, context, **options)
    finally:
        await cancel_and_wait(task)
    if not task.cancelled() and (error := task.exception()) is not None:
        raise error
