"""Performance suites for agentplex (pytest-benchmark). They never assert wall-clock times: each
test checks that the work was done correctly (every message arrived, once, in order; every agent
is registered) and reports its figures in the benchmark's `extra_info` and in a summary printed
at the end of the run ("agentplex benchmark figures").

Run them (under a minute on a 2-core machine):

    .venv/bin/pytest tests/benchmarks -m benchmark --benchmark-enable -p no:cacheprovider

Every test carries the `benchmark` marker, so `-m benchmark` selects them and `-m 'not
benchmark'` leaves them out. Without `--benchmark-enable` (pyproject passes
`--benchmark-disable`) each test runs once, at a smaller size, as a quick correctness check, and
its figures are marked as not timed. Add `--benchmark-json=bench.json` to keep the numbers
(extra_info included), `-s` to see each figure as it is measured, `-k latency` (or
registration, glob, throughput, memory) to run one suite.

- test_registration.py: `Hub.register_agent` in-process on the memory engine, and its pure part
  (`check_card` + `new_agent`); target < 10 us per registration.
- test_globmatch.py: `glob_match` and `SubscriptionIndex.match` over 1,000 patterns and 1,000
  names, cached and uncached.
- test_latency.py: publish-to-deliver round trip over gRPC, hub in a subprocess and in-process,
  with unary publishes and a Subscribe stream, and between two agent sessions; target median
  < 1 ms; p50/p95/p99 reported.
- test_throughput.py: one-way throughput over gRPC to a hub subprocess, batched (target
  > 100,000 msgs/s) and pipelined single publishes; reports which process is the bottleneck.
- test_memory.py: resident memory of an idle `agentplex serve`, after startup and with 1,000
  idle subscriptions or 1,000 idle agent sessions.
"""
