"""Background work owned by a component: each task is held until it is done (the event loop
keeps only weak references), a failure is logged rather than lost, and the component cancels
what is left when it stops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from types import FrameType
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` and wait until it has ended. Unlike awaiting it under
    `suppress(CancelledError)`, this never swallows a cancellation of the caller itself, which
    would leave the caller running on after it was told to stop."""
    if task is None:
        return
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # retrieved: a failure while stopping is not reported a second time


def await_chain(awaitable: Any) -> list[FrameType]:
    """The frames of a coroutine (or async generator) and of everything it awaits in turn,
    outermost first: where a stuck task is stuck."""
    frames = []
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "ag_frame", None)
        if frame is not None:
            frames.append(frame)
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "ag_await", None)
    return frames


class Background:
    def __init__(self, log: logging.Logger, owner: str) -> None:
        self._log = log
        self._owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("%s: background task failed", self._owner, exc_info=task.exception())

    async def cancel(self) -> None:
        """Cancel every task still running and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
