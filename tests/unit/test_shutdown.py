"""Stages of a stop share one time budget: a stage that overruns is abandoned with a warning
naming it and the setting, even one that ignores cancellation; a failing stage is logged; the
stop goes on either way."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agentplex.errors import Unavailable
from agentplex.shutdown import Shutdown

log = logging.getLogger("test.shutdown")


async def _forever() -> None:
    await asyncio.Event().wait()


async def _stubborn(cancelled: asyncio.Event) -> None:
    """Swallows its cancellation and waits on, as a hung teardown might."""
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        cancelled.set()
        await asyncio.Event().wait()


async def test_an_overrunning_stage_is_abandoned_and_the_next_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    shutdown = Shutdown(0.2, log)
    ran = []

    async def step(name: str) -> None:
        ran.append(name)

    await step("before")
    await asyncio.wait_for(shutdown.stage("hanging step", _forever()), 10)
    await shutdown.stage("next step", step("after"))
    assert ran == ["before", "after"]  # the task got its first turn even with no time left
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "hanging step" in warning.getMessage()
    assert "server.shutdown_timeout" in warning.getMessage()
    assert "_forever (test_shutdown.py:" in warning.getMessage()  # where it hung


async def test_a_stage_that_ignores_its_cancel_cannot_hold_the_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cancelled = asyncio.Event()
    shutdown = Shutdown(0.2, log)
    await asyncio.wait_for(shutdown.stage("stubborn step", _stubborn(cancelled)), 10)
    await asyncio.wait_for(cancelled.wait(), 10)
    assert any("stubborn step" in r.getMessage() for r in caplog.records)


async def test_failures_are_logged_and_the_stop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async def unreachable() -> None:
        raise Unavailable("cannot reach Redis (engine.redis_url)")

    async def broken() -> None:
        raise RuntimeError("bug")

    shutdown = Shutdown(10, log)
    await shutdown.stage("requeueing", unreachable())
    await shutdown.stage("closing", broken())
    first, second = caplog.records
    assert first.levelno == logging.WARNING and "engine.redis_url" in first.getMessage()
    assert first.exc_info is None
    assert second.levelno == logging.ERROR and second.exc_info is not None


async def test_a_stage_within_the_budget_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    shutdown = Shutdown(10, log)
    await shutdown.stage("quick step", asyncio.sleep(0))
    assert not caplog.records
    assert 0 < shutdown.remaining() <= 10
