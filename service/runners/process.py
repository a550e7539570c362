"""One CLI process: started in its own process group with a scrubbed environment, its stdout
read line by line, its stdin open for answers when the kind allows, its stderr's tail kept for
the failure message, and stopped with SIGINT then SIGKILL after a grace period."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

# The minimum a CLI needs to find its tools, its config and a locale; nothing else leaks in.
BASE_ENV = ("PATH", "HOME", "LANG")
LINE_LIMIT = 4 * 1024 * 1024
STDERR_TAIL = 2000


def environment(
    env_allow: str, task_id: str, attempt: int, source: Mapping[str, str]
) -> dict[str, str]:
    """PATH, HOME, LANG and the names in `env_allow` (comma-separated) from `source`, plus
    TERM=dumb and the task's id and attempt."""
    names = [*BASE_ENV, *(n.strip() for n in env_allow.split(",") if n.strip())]
    env = {name: source[name] for name in names if name in source}
    env.update(TERM="dumb", AGENTPLEX_TASK_ID=task_id, AGENTPLEX_ATTEMPT=str(attempt))
    return env


class CliProcess:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._stderr = bytearray()
        self._drain = asyncio.get_running_loop().create_task(self._read_stderr())

    @classmethod
    async def start(
        cls, argv: list[str], *, cwd: Path, env: dict[str, str], stdin: bytes | None
    ) -> CliProcess:
        """Start `argv`; `stdin` bytes are written and stdin closed, None keeps it open.
        OSError (a missing or non-executable program) is the caller's to explain."""
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            limit=LINE_LIMIT,
        )
        running = cls(proc)
        if stdin is not None:
            await running.write(stdin)
            running.close_stdin()
        return running

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            self._stderr.extend(chunk)
            del self._stderr[:-STDERR_TAIL]

    async def lines(self) -> AsyncIterator[str]:
        """stdout, line by line (a line over LINE_LIMIT is cut into pieces, never fatal)."""
        assert self.proc.stdout is not None
        while True:
            try:
                line = await self.proc.stdout.readline()
            except ValueError:  # longer than the limit: take what is buffered
                line = await self.proc.stdout.read(LINE_LIMIT)
            if not line:
                return
            yield line.decode(errors="replace")

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def write(self, data: bytes) -> None:
        stdin = self.proc.stdin
        if stdin is None or stdin.is_closing():
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.write(data)
            await stdin.drain()

    def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()

    async def wait(self) -> int:
        code = await self.proc.wait()
        await self._drain
        return code

    def stderr_tail(self, limit: int = 500) -> str:
        return self._stderr.decode(errors="replace").strip()[-limit:]

    async def stop(self, grace: float) -> None:
        """SIGINT to the process group; SIGKILL after `grace` seconds to whatever of the group
        is still there (the CLI itself, or tools it started)."""
        self.close_stdin()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGINT)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()
        self._drain.cancel()
