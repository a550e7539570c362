"""What a stalled async test was waiting for: pytest-timeout shows threads, not coroutines, so
shortly before it fires this prints every asyncio task of the running loop with its whole await
chain. An intermittent hang in CI then names the line it hung on."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import traceback

from agentplex.background import await_chain

_timers: dict[str, threading.Timer] = {}


def arm(nodeid: str, timeout: float) -> None:
    """Dump the tasks `timeout` seconds from now unless `disarm` comes first."""
    timer = threading.Timer(timeout, _dump_from_thread, args=(nodeid,))
    timer.daemon = True
    _timers[nodeid] = timer
    timer.start()


def disarm(nodeid: str) -> None:
    timer = _timers.pop(nodeid, None)
    if timer is not None:
        timer.cancel()


def _dump_from_thread(nodeid: str) -> None:
    loops = [
        o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and o.is_running()
    ]
    for loop in loops:
        loop.call_soon_threadsafe(_dump, loop, nodeid)


def _dump(loop: asyncio.AbstractEventLoop, nodeid: str) -> None:
    out = sys.__stderr__ or sys.stderr
    print(f"\n===== asyncio tasks of {nodeid}, still waiting =====", file=out)
    for task in asyncio.all_tasks(loop):
        print(f"--- {task!r}", file=out)
        frames = [(frame, frame.f_lineno) for frame in await_chain(task.get_coro())]
        traceback.print_list(traceback.StackSummary.extract(frames), file=out)
    out.flush()
