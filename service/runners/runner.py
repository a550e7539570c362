"""A CLI runner is an SDK task handler: each task runs its CLI in a workspace of its own, the
CLI's output streams to the hub as progress, a question the CLI asks goes to a person through
the hub (the task is INPUT_REQUIRED and the agent WAITING_INPUT meanwhile), changed files come
back as artifacts and the CLI's final answer is the result. Anything that goes wrong with the
CLI fails only that task, with a message naming the cause and the setting to look at.

    runner = CliRunner("codex", settings.agents.kind("codex"), workdir=Path("."))
    card = runner.card(capabilities=["python"], version=await runner.version())
    async with client.session(card) as session:
        session.on_task(runner)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from agentplex.client import HubError, SessionClosed, TaskContext
from agentplex.config import KindSettings
from agentplex.config.seed import SEED_NAMES
from agentplex.runners.kinds import CUSTOM, Event, Invocation, argv, follow_up, spec_of
from agentplex.runners.process import CliProcess, environment
from agentplex.runners.workspace import context_files, prompt_for, workspace
from agentplex.v1 import agent_pb2

KILL_GRACE = 5.0
VERSION_TIMEOUT = 10.0
MAX_PROGRESS = 4000


class RunnerError(Exception):
    """A task's CLI run failed; the message is what the task's FAILED status says."""


@dataclass
class Turn:
    """What one CLI process left: its answer, a question still to ask, its session id."""

    answer: str = ""
    question: str = ""
    session: str = ""


class CliRunner:
    def __init__(
        self,
        kind: str,
        settings: KindSettings | None = None,
        *,
        template: str = "",
        workdir: Path | None = None,
        kill_grace: float = KILL_GRACE,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self.spec = spec_of(kind, template)
        self.settings = settings or KindSettings()
        self.workdir = workdir
        self.kill_grace = kill_grace
        self.environ = os.environ if environ is None else environ
        self.program = self.settings.cli_path or self.spec.program
        self._waiting = 0

    @property
    def label(self) -> str:
        return f"{self.kind} CLI {self.program!r}"

    # Start-up ---------------------------------------------------------------------------

    async def version(self) -> str:
        """The first line of `CLI --version`, "" for a custom command or a CLI that cannot say."""
        if self.kind == CUSTOM:
            return ""
        try:
            proc = await asyncio.create_subprocess_exec(
                self.program,
                "--version",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                env=environment(self.settings.env_allow, "", 0, self.environ),
            )
        except OSError:
            return ""
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), VERSION_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return ""
        lines = out.decode(errors="replace").strip().splitlines()
        return lines[0].strip()[:100] if lines and proc.returncode == 0 else ""

    def card(
        self,
        *,
        agent_id: str = "",
        name: str = "",
        capabilities: Iterable[str] = (),
        max_tasks: int = 0,
        version: str = "",
    ) -> agent_pb2.AgentCard:
        """The agent card: this kind, the CLI's version as label `cli_version`, and
        max_concurrent_tasks from `max_tasks` or else agents.<kind>.max_concurrent_tasks."""
        return agent_pb2.AgentCard(
            id=agent_id,
            name=name or agent_id,
            kind=agent_pb2.AgentKind.Value(f"AGENT_KIND_{self.kind.upper()}"),
            capabilities=list(capabilities),
            max_concurrent_tasks=max_tasks or self.settings.max_concurrent_tasks,
            labels={"cli_version": version} if version else {},
        )

    # One task ---------------------------------------------------------------------------

    async def __call__(self, task: TaskContext) -> str:
        async with workspace(self.workdir, task.id) as space:
            await asyncio.to_thread(space.write, context_files(task.task))
            inv = Invocation(
                prompt_for(task.task), str(space.cwd), space.git, self.settings.sandbox
            )
            answer = await self._converse(task, space.cwd, inv)
            for artifact in await space.changes():
                await task.artifact(artifact)
        return answer

    async def _converse(self, task: TaskContext, cwd: Path, inv: Invocation) -> str:
        """Run the CLI, and again with each answer a person gives, until it has answered.
        The timeout counts the CLI's time only, not the time a person takes to answer."""
        first_prompt = inv.prompt
        try:
            async with asyncio.timeout(self.settings.timeout) as clock:
                while True:
                    turn = await self._turn(task, cwd, inv, clock)
                    if not turn.question:
                        return turn.answer
                    reply = await self._ask(task, clock, turn.question)
                    resumed = replace(inv, session=turn.session)
                    inv = follow_up(self.spec, resumed, first_prompt, turn.question, reply)
        except TimeoutError:
            if not clock.expired():
                raise
            raise RunnerError(
                f"{self.label} ran longer than {self.settings.timeout:g} s "
                f"(agents.{self.kind}.timeout)"
            ) from None

    async def _turn(
        self, task: TaskContext, cwd: Path, inv: Invocation, clock: asyncio.Timeout
    ) -> Turn:
        stdin: bytes | None = b""
        if self.spec.prompt_on_stdin:
            stdin = inv.prompt.encode()
        elif self.spec.stdin_open:
            stdin = None
        env = environment(self.settings.env_allow, task.id, task.attempt, self.environ)
        command = argv(self.spec, self.settings, inv)
        try:
            proc = await CliProcess.start(command, cwd=cwd, env=env, stdin=stdin)
        except OSError as err:
            raise RunnerError(self._cannot_start(err)) from None
        parser = self.spec.parser()
        turn, errors = Turn(session=inv.session), []
        try:
            async for line in proc.lines():
                for event in parser.feed(line):
                    errors += await self._apply(event, turn, task, proc, clock)
            code = await proc.wait()
        except BaseException:  # cancelled, timed out, or the hub went away
            await proc.stop(self.kill_grace)
            raise
        if code != 0:
            tail = proc.stderr_tail()
            raise RunnerError(f"{self.label} exited with {code}" + (f": {tail}" if tail else ""))
        for event in parser.finish():
            errors += await self._apply(event, turn, task, proc, clock)
        if errors:
            raise RunnerError(f"{self.label}: {errors[0]}")
        return turn

    async def _apply(
        self,
        event: Event,
        turn: Turn,
        task: TaskContext,
        proc: CliProcess,
        clock: asyncio.Timeout,
    ) -> list[str]:
        """Act on one event; returns the error it reports, if any."""
        if event.session:
            turn.session = event.session
        if event.progress:
            await task.progress(event.progress[:MAX_PROGRESS])
        if event.answer is not None:
            turn.answer = event.answer
        if event.ask:
            if self.spec.stdin_open and proc.alive:
                reply = await self._ask(task, clock, event.ask)
                await proc.write(reply.encode() + (b"" if reply.endswith("\n") else b"\n"))
            else:
                turn.question = event.ask
        return [event.error] if event.error else []

    async def _ask(self, task: TaskContext, clock: asyncio.Timeout, question: str) -> str:
        """Ask through the hub, with the CLI's clock stopped and the agent WAITING_INPUT."""
        loop = asyncio.get_running_loop()
        left = (clock.when() or loop.time()) - loop.time()
        clock.reschedule(None)
        await self._waiting_by(task, 1)
        try:
            return (await task.ask(question)).data.decode(errors="replace")
        finally:
            await self._waiting_by(task, -1)
            clock.reschedule(loop.time() + left)

    async def _waiting_by(self, task: TaskContext, delta: int) -> None:
        """WAITING_INPUT while any task waits for a person, ONLINE again once none does."""
        self._waiting += delta
        if self._waiting == (1 if delta > 0 else 0):
            status = (
                agent_pb2.AGENT_STATUS_WAITING_INPUT
                if self._waiting
                else agent_pb2.AGENT_STATUS_ONLINE
            )
            with contextlib.suppress(HubError, SessionClosed):
                await task.session.set_status(status)

    def _cannot_start(self, err: OSError) -> str:
        seed = [name for name, (_, key) in SEED_NAMES.items() if key == f"{self.kind}.cli_path"]
        setting = f"agents.{self.kind}.cli_path" + (f" (or {seed[0]})" if seed else "")
        return f"{self.label} cannot be run ({err.strerror or err}): install it or set {setting}"
