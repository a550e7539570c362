"""What security costs. Target: authentication and scope checks add under 10% to the publish
path.

- the publish path in process: per publish, the caller is authenticated (as the gRPC layer does
  on every call: a cached token with auth on, the anonymous principal with auth off) and the
  envelope published with its scope check; both hubs run side by side in every round;
- publish -> deliver over gRPC against two `agentplex serve` processes, auth off and on;
- per connection: verifying a token nobody presented before (HS256, RS256, ES256), and a
  token already verified (the cache every later call hits).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from agentplex.config import AuthSettings
from agentplex.hub import Hub
from agentplex.security.auth import Authenticator
from agentplex.security.tokens import TokenVerifier
from agentplex.v1 import envelope_pb2
from tests.benchmarks.helpers import (
    hub_process,
    latency_figures,
    per_op_figures,
    percentile,
    report,
    serve_settings,
    sized,
)
from tests.benchmarks.test_latency import SAMPLES, probe_of
from tests.support.auth import SECRET, key_pair, token

PUBLISHES = 2000  # per hub per round
ROUNDS = 10
SCOPES = "publish:bench.* subscribe:bench.*"


def overhead_pct(off: float, on: float) -> float:
    return round((on - off) / off * 100, 1)


@pytest.mark.benchmark(group="auth")
def test_publish_path_auth_on_vs_off(benchmark: Any, runner: asyncio.Runner) -> None:
    auth_on = AuthSettings(enabled=True, jwt_secret=SECRET)
    off, on = Hub(serve_settings()), Hub(serve_settings().__class__(auth=auth_on))
    runner.run(off.start())
    runner.run(on.start())
    bearer = token("bench", SCOPES)
    count = sized(benchmark, PUBLISHES, 50)
    times: dict[str, list[float]] = {"off": [], "on": []}

    async def publish_all(hub: Hub, credential: str) -> float:
        authenticate, publish = hub.auth.authenticate, hub.publish
        envelopes = [
            [envelope_pb2.Envelope(channel="bench.auth", payload=b"x" * 64)] for _ in range(count)
        ]
        start = time.perf_counter_ns()
        for batch in envelopes:
            await publish(authenticate(credential, "grpc", "ipv4:127.0.0.1:1"), batch)
        return (time.perf_counter_ns() - start) / count / 1000

    def one_round() -> None:
        times["off"].append(runner.run(publish_all(off, "")))
        times["on"].append(runner.run(publish_all(on, bearer)))

    try:
        one_round()  # warm-up: the token is verified once, then cached
        times["off"].clear()
        times["on"].clear()
        benchmark.pedantic(one_round, rounds=ROUNDS)
    finally:
        runner.run(off.stop())
        runner.run(on.stop())
    median_off = percentile(sorted(times["off"]), 50)
    median_on = percentile(sorted(times["on"]), 50)
    report(
        benchmark,
        "publish path in process (authenticate + scope check + publish), auth off vs on",
        publishes_per_round=count,
        us_per_publish_off=round(median_off, 2),
        us_per_publish_on=round(median_on, 2),
        overhead_pct=overhead_pct(median_off, median_on),
        target_overhead_pct=10,
    )


@pytest.fixture(scope="module")
def hubs() -> Iterator[dict[str, str]]:
    """Two `agentplex serve` processes on the memory engine: auth off and auth on."""
    secured = {"AGENTPLEX_AUTH__ENABLED": "true", "AGENTPLEX_AUTH__JWT_SECRET": SECRET}
    with hub_process() as (_, plain), hub_process(env=secured) as (_, guarded):
        yield {"off": plain, "on": guarded}


@pytest.mark.benchmark(group="auth")
def test_publish_latency_over_grpc_auth_on_vs_off(
    benchmark: Any, runner: asyncio.Runner, hubs: dict[str, str]
) -> None:
    stack = AsyncExitStack()
    try:
        probes = {
            "off": runner.run(stack.enter_async_context(probe_of(hubs["off"]))),
            "on": runner.run(
                stack.enter_async_context(probe_of(hubs["on"], token("bench", SCOPES)))
            ),
        }
        samples = sized(benchmark, SAMPLES, 50)

        def one_round() -> None:
            for probe in probes.values():
                runner.run(probe.sample(samples))

        one_round()  # warm-up
        for probe in probes.values():
            probe.samples_us.clear()
        benchmark.pedantic(one_round, rounds=ROUNDS)
    finally:
        runner.run(stack.aclose())
    off = latency_figures(probes["off"].samples_us, "off_")
    on = latency_figures(probes["on"].samples_us, "on_")
    report(
        benchmark,
        "publish->deliver over gRPC, hub subprocesses, auth off vs on",
        samples=len(probes["on"].samples_us),
        **off,
        **on,
        overhead_p50_pct=overhead_pct(off["off_p50_us"], on["on_p50_us"]),
        target_overhead_pct=10,
    )


@pytest.mark.benchmark(group="auth")
@pytest.mark.parametrize("algorithm", ["HS256", "RS256", "ES256"])
def test_token_verification_per_connection(benchmark: Any, algorithm: str, tmp_path: Path) -> None:
    if algorithm == "HS256":
        auth, key = AuthSettings(enabled=True, jwt_secret=SECRET), SECRET
    else:
        pair = key_pair(tmp_path, algorithm)
        auth = AuthSettings(
            enabled=True, jwt_algorithm=algorithm, jwt_public_key_file=pair.public_file
        )
        key = pair.private
    tokens = [token(f"agent-{i}", SCOPES, key=key, algorithm=algorithm) for i in range(100)]
    verifier = TokenVerifier(auth)

    def verify_all() -> None:
        for presented in tokens:
            verifier.claims(presented)

    benchmark.pedantic(verify_all, rounds=sized(benchmark, 20, 1))
    cached = Authenticator(auth)
    cached.authenticate(tokens[0], "websocket", "p")
    start = time.perf_counter_ns()
    for _ in range(10_000):
        cached.authenticate(tokens[0], "websocket", "p")
    cached_us = (time.perf_counter_ns() - start) / 10_000 / 1000
    report(
        benchmark,
        f"token verification per connection, {algorithm}",
        tokens_per_round=len(tokens),
        **per_op_figures(benchmark, len(tokens)),
        cached_us_per_call=round(cached_us, 3),
    )
