"""Helpers shared by the benchmark suites: hub settings like `agentplex serve`'s, percentiles,
CPU accounting of the processes involved, and reporting of figures (extra_info + summary)."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psutil

from agentplex.config import Settings
from tests.support.hubs import fast_settings, serve_process

# Lines printed in the terminal summary at the end of the run (see conftest.py).
FIGURES: list[str] = []

# The packaged defaults (what `agentplex serve` runs with), not the fast test timers.
SERVE_SESSION = {
    "heartbeat_interval": 10.0,
    "heartbeat_timeout": 30.0,
    "grace_period": 60.0,
    "ack_timeout": 30.0,
    "tick": 0.25,
}


def serve_settings() -> Settings:
    """Development settings on a free port with the timers `agentplex serve` uses."""
    return fast_settings(session=dict(SERVE_SESSION))


_prefixes = itertools.count()


@contextmanager
def hub_process(
    redis_url: str = "", env: dict[str, str] | None = None
) -> Iterator[tuple[psutil.Process, str]]:
    """`agentplex serve` in its own process (its own core); yields (process, grpc address). On
    the Redis engine when `redis_url` is given (under a key prefix of its own).

    Logging stays at WARNING: the hub's stdout is a pipe nobody reads after startup, and INFO
    lines (one audit line per registration) would fill it and stall the hub.
    """
    args = ["--log-level", "WARNING"]
    env = dict(env or {})
    if redis_url:
        args += ["--engine", "redis", "--redis-url", redis_url]
        env["AGENTPLEX_ENGINE__REDIS_PREFIX"] = f"bench{next(_prefixes)}"
    with serve_process(*args, env=env) as (proc, address):
        yield psutil.Process(proc.pid), address


def engine_of(request: Any) -> str:
    """The engine a test's hub fixture runs on (its "hub" parameter)."""
    return str(request.node.callspec.params["hub"])


@contextmanager
def engine_hub(request: Any) -> Iterator[tuple[psutil.Process, str]]:
    """`hub_process` on the engine a fixture is parametrized with ("memory" or "redis")."""
    url = request.getfixturevalue("private_redis").url if request.param == "redis" else ""
    with hub_process(url) as running:
        yield running


def sized(benchmark: Any, full: int, smoke: int) -> int:
    """`full` when timing; `smoke` when benchmarks are disabled (the default test run executes
    each benchmark once, as a correctness check, and should stay quick)."""
    return full if benchmark.enabled else smoke


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_figures(samples_us: Sequence[float], prefix: str = "") -> dict[str, float]:
    ordered = sorted(samples_us)
    return {
        f"{prefix}p50_us": round(percentile(ordered, 50), 1),
        f"{prefix}p95_us": round(percentile(ordered, 95), 1),
        f"{prefix}p99_us": round(percentile(ordered, 99), 1),
        f"{prefix}max_us": round(ordered[-1], 1),
    }


def round_seconds(benchmark: Any) -> dict[str, float] | None:
    """Median, min and mean seconds per round, or None when benchmarking is disabled."""
    meta = getattr(benchmark, "stats", None)
    if meta is None:
        return None
    stats = meta.stats
    return {"median": stats.median, "min": stats.min, "mean": stats.mean}


def per_op_figures(benchmark: Any, ops_per_round: int) -> dict[str, float]:
    """us per operation from the benchmark's round statistics (a round does `ops_per_round`)."""
    rounds = round_seconds(benchmark)
    if rounds is None:
        return {}
    return {
        f"us_per_op_{name}": round(seconds / ops_per_round * 1e6, 3)
        for name, seconds in rounds.items()
    }


def report(benchmark: Any, title: str, **figures: Any) -> None:
    """Put figures in the benchmark's extra_info, print them and keep them for the summary."""
    benchmark.extra_info.update(figures)
    if not benchmark.enabled:
        title = f"[not timed: --benchmark-disable, smoke size] {title}"
    line = f"{title}: " + ", ".join(f"{key}={value}" for key, value in figures.items())
    print(line)
    FIGURES.append(line)


def _cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


@dataclass
class CpuMeter:
    """CPU seconds used by some processes while work runs, against the wall time it took.

    A utilization near 1.0 for the test process (one event loop, one core) or near 1.0 plus the
    gRPC poller thread for the hub means that process is the bottleneck.
    """

    processes: dict[str, psutil.Process]
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def measure(self) -> Iterator[None]:
        before = {name: _cpu_seconds(p) for name, p in self.processes.items()}
        start = time.perf_counter()
        try:
            yield
        finally:
            self.wall += time.perf_counter() - start
            for name, p in self.processes.items():
                self.cpu[name] = self.cpu.get(name, 0.0) + _cpu_seconds(p) - before[name]

    def figures(self, messages: int) -> dict[str, Any]:
        """Utilization (CPU seconds per wall second) and CPU us per message, per process."""
        out: dict[str, Any] = {}
        if not self.wall:
            return out
        for name, seconds in self.cpu.items():
            out[f"{name}_cpu_util"] = round(seconds / self.wall, 2)
            out[f"{name}_cpu_us_per_msg"] = round(seconds / messages * 1e6, 2) if messages else 0
        busiest = max(self.cpu, key=lambda name: self.cpu[name])
        out["bottleneck"] = busiest
        return out
