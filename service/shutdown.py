"""Stopping within one time budget, `server.shutdown_timeout`: each stage of a stop gets what is
left of it, and a stage that overruns is abandoned with a warning naming it, so one stuck step (an
unreachable Redis, a hung teardown) cannot keep a node from exiting."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from agentplex.background import await_chain
from agentplex.errors import HubError


class Shutdown:
    def __init__(self, timeout: float, log: logging.Logger) -> None:
        self.timeout = timeout
        self._deadline = time.monotonic() + timeout
        self._log = log

    def remaining(self) -> float:
        return max(self._deadline - time.monotonic(), 0.0)

    async def stage(self, name: str, step: Awaitable[Any]) -> None:
        """Run one stage for at most the time left. An overrun is cancelled and abandoned (not
        awaited: it may not even honour the cancel), a failure is logged; the stop goes on."""
        task = asyncio.ensure_future(step)
        try:
            await asyncio.wait({task}, timeout=self.remaining())
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not task.done():
            self._log.warning(
                "shutdown: %s did not finish within server.shutdown_timeout (%gs); abandoned "
                "while waiting in %s",
                name,
                self.timeout,
                _waiting_in(task),
            )
            task.add_done_callback(_retrieve)
            task.cancel()
            return
        failure = None if task.cancelled() else task.exception()
        if isinstance(failure, HubError):  # an unreachable engine, typically: no traceback
            self._log.warning("shutdown: %s failed: %s", name, failure)
        elif failure is not None:
            self._log.error("shutdown: %s failed", name, exc_info=failure)


def _waiting_in(task: asyncio.Future[Any]) -> str:
    """The chain of awaits a stuck stage hangs in, outermost first: what a hang report needs."""
    frames = await_chain(task.get_coro()) if isinstance(task, asyncio.Task) else []
    places = [
        f"{f.f_code.co_name} ({Path(f.f_code.co_filename).name}:{f.f_lineno})" for f in frames
    ]
    return " > ".join(places) or "an awaitable that is no coroutine"


def _retrieve(task: asyncio.Future[Any]) -> None:
    """An abandoned stage's outcome is of no interest; taking it keeps asyncio quiet."""
    if not task.cancelled():
        task.exception()
