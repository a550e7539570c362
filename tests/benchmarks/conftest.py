"""Fixtures of the benchmark suites and the summary of their figures at the end of the run.

Benchmark tests are plain (sync) functions: pytest-benchmark times synchronous calls, so each test
drives its own event loop through an `asyncio.Runner` and hands `runner.run(...)` to the
benchmark. Everything async (hub, gRPC channels, subscriptions) lives on that one loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from tests.benchmarks.helpers import FIGURES


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as loop_runner:
        yield loop_runner


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.write_sep("=", "agentplex benchmark figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
