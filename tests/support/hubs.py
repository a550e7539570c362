"""Start real hub nodes (in-process gRPC on loopback, or `agentplex serve` subprocesses)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from agentplex.config import Settings, load_settings

ADDRESS = re.compile(r"grpc\s+(\S+:\d+)")
WS_URL = re.compile(r"ws\s+(wss?://\S+)")


def fast_settings(**sections: dict[str, Any]) -> Settings:
    """Development settings on a free port with timers short enough for tests."""
    base = load_settings("development")
    overrides: dict[str, Any] = {
        "server": {"grpc_port": 0, "ws_port": 0},
        "session": {
            "heartbeat_interval": 0.2,
            "heartbeat_timeout": 1.0,
            "grace_period": 1.5,
            "ack_timeout": 0.5,
            "tick": 0.05,
        },
    }
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    for name, values in overrides.items():
        base = replace(base, **{name: replace(getattr(base, name), **values)})
    return base


@contextmanager
def serve_process(
    *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run `agentplex serve --grpc-port 0 ...` and yield (process, grpc address); the
    WebSocket URL it prints is `process.ws_url`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentplex", "serve", "--grpc-port", "0", "--ws-port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        address = ws_url = ""
        deadline = time.monotonic() + 20
        assert proc.stdout is not None
        while time.monotonic() < deadline and not (address and ws_url):
            line = proc.stdout.readline()
            if not line:
                break
            if found := ADDRESS.search(line):
                address = found.group(1)
            if found := WS_URL.search(line):
                ws_url = found.group(1)
        proc.ws_url = ws_url  # type: ignore[attr-defined]
        if not address:
            raise RuntimeError(f"agentplex serve did not start (exit {proc.poll()})")
        # Keep reading what the hub prints, so its log never fills the pipe and stalls it.
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
        reader.start()
        proc.output = lines  # type: ignore[attr-defined]
        proc.reader = reader  # type: ignore[attr-defined]
        yield proc, address
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
