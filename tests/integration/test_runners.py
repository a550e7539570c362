"""CLI runners against a live hub, with executable stand-ins of each CLI (tests/support/standins)
that record the argv and environment they got: the exact command line per kind, cancel as
SIGINT then SIGKILL, timeout, crash, missing CLI, garbage, input round trips (stdin and resume),
artifacts, worktree isolation, handoff between kinds, max_concurrent_tasks, and the command."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from agentplex.client import Client, Session, TaskFailed, TaskHandle
from agentplex.config import KindSettings
from agentplex.node import HubNode
from agentplex.runners import CliRunner
from agentplex.v1 import agent_pb2, task_pb2
from tests.support.hubs import fast_settings, serve_process
from tests.support.redis_server import RedisServer
from tests.support.standins import DIR, records

PROGRAMS = {
    "claude_code": "claude",
    "cursor": "cursor-agent",
    "github_copilot": "copilot",
    "gemini_cli": "gemini",
    "codex": "codex",
    "opencode": "opencode",
}
# The stand-ins come first on PATH, then this interpreter (so `env python3` is a real one).
PATH = os.pathsep.join([str(DIR), str(Path(sys.executable).parent), "/usr/bin", "/bin"])
STATE = task_pb2.TaskState


@pytest.fixture
async def hub() -> AsyncIterator[HubNode]:
    async with HubNode(fast_settings()) as node:
        yield node


@pytest.fixture
async def client(hub: HubNode) -> AsyncIterator[Client]:
    async with Client(hub.grpc_address) as c:
        yield c


@pytest.fixture
def record(tmp_path: Path) -> Path:
    return tmp_path / "record.jsonl"


@pytest.fixture
def environ(record: Path, tmp_path: Path) -> dict[str, str]:
    """What the runner's process has: the minimum, the record file, and a secret to keep."""
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": PATH,
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "STANDIN_RECORD": str(record),
        "SECRET_TOKEN": "must-not-leak",
    }


def settings(**fields: object) -> KindSettings:
    return replace(KindSettings(env_allow="STANDIN_RECORD", timeout=30), **fields)  # type: ignore[arg-type]


@asynccontextmanager
async def running(
    client: Client, runner: CliRunner, caps: str = "code", max_tasks: int = 0
) -> AsyncIterator[Session]:
    card = runner.card(capabilities=[caps], max_tasks=max_tasks, version=await runner.version())
    async with client.session(card) as session:
        session.on_task(runner)
        yield session


async def until_state(handle: TaskHandle, state: int) -> task_pb2.Task:
    async for event in handle.events():
        if event.task.state == state:
            return event.task
    raise AssertionError(f"task ended {event.task.state}, never {state}")


async def wait_for(check: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def gone_dir(path: str) -> bool:
    return not Path(path).exists()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# Each kind's command line ---------------------------------------------------------------

PROMPT = "fix the bug"
SANDBOXED = ["--permission-mode", "acceptEdits"]
EXPECTED = {
    "claude_code": (
        ["-p", PROMPT, "--output-format", "stream-json", "--verbose", *SANDBOXED],
        "claude answer: fix the bug",
    ),
    "cursor": (
        ["-p", PROMPT, "--output-format", "stream-json"],
        "cursor-agent answer: fix the bug",
    ),
    "github_copilot": (["-p", PROMPT], "thinking...\ncopilot answer: fix the bug\n"),
    "gemini_cli": (
        ["-p", PROMPT, "--output-format", "json", "--sandbox"],
        "gemini answer: fix the bug",
    ),
    "codex": (
        ["exec", "--json", "--sandbox", "workspace-write", "--skip-git-repo-check", PROMPT],
        "codex answer: fix the bug",
    ),
    "opencode": (["run", PROMPT], "thinking...\nopencode answer: fix the bug\n"),
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
async def test_each_kind_runs_its_cli_with_exact_argv_and_environment(
    client: Client, kind: str, record: Path, environ: dict[str, str]
) -> None:
    runner = CliRunner(kind, settings(), environ=environ)
    async with running(client, runner) as session:
        handle = await client.submit(PROMPT, require=["code"])
        result = await asyncio.wait_for(handle.result(), 20)
        agent = await client.get_agent(session.agent_id)
    args, answer = EXPECTED[kind]
    assert result.data.decode() == answer
    [run] = records(record)
    assert run["argv"][0] == str(DIR / PROGRAMS[kind]) and run["argv"][1:] == args
    assert run["env"] == {
        "PATH": PATH,
        "HOME": environ["HOME"],
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "STANDIN_RECORD": str(record),
        "AGENTPLEX_TASK_ID": handle.id,
        "AGENTPLEX_ATTEMPT": "1",
    }
    assert gone_dir(run["cwd"]), "the task's directory outlives the task"
    assert agent.card.labels["cli_version"] == f"{PROGRAMS[kind]} 9.9.9-standin"
    assert agent.card.kind == agent_pb2.AgentKind.Value(f"AGENT_KIND_{kind.upper()}")


async def test_custom_template_gets_prompt_and_workdir_quoted(
    client: Client, record: Path, environ: dict[str, str]
) -> None:
    template = f"{DIR / 'opencode'} run {{prompt}} && echo in {{workdir}}"
    runner = CliRunner("custom", settings(), template=template, environ=environ)
    async with running(client, runner):
        result = await (await client.submit("it's $HOME", require=["code"])).result()
    [run] = records(record)
    assert run["argv"][1:] == ["run", "it's $HOME"]
    assert result.data.decode().endswith(f"in {run['cwd']}\n")
    assert "SECRET_TOKEN" not in run["env"]


async def test_settings_apply_sandbox_extra_args_and_git_workdir(
    client: Client, record: Path, environ: dict[str, str], tmp_path: Path
) -> None:
    repo = git_repo(tmp_path / "repo")
    kind = settings(sandbox=False, extra_args="--model 'o3 mini'")
    runner = CliRunner("codex", kind, workdir=repo, environ=environ)
    async with running(client, runner):
        await (await client.submit(PROMPT, require=["code"])).result()
    [run] = records(record)
    # In a git worktree Codex needs no --skip-git-repo-check; without sandbox: full access.
    assert run["argv"][1:] == [
        "exec",
        "--json",
        "--sandbox",
        "danger-full-access",
        PROMPT,
        "--model",
        "o3 mini",
    ]


# Failures: each fails its task clearly and the runner stays up ---------------------------


async def test_crash_fails_with_stderr_and_the_runner_takes_the_next_task(
    client: Client, environ: dict[str, str]
) -> None:
    runner = CliRunner("claude_code", settings(), environ=environ)
    async with running(client, runner):
        with pytest.raises(TaskFailed) as failed:
            await (await client.submit("crash now", require=["code"])).result()
        assert failed.value.task.state == STATE.TASK_STATE_FAILED
        message = failed.value.task.error.message
        assert "claude_code CLI 'claude' exited with 3: standin: something broke" in message
        assert (await (await client.submit("next", require=["code"])).result()).data


async def test_missing_cli_names_the_setting(client: Client, environ: dict[str, str]) -> None:
    runner = CliRunner("claude_code", settings(cli_path="/nowhere/claude"), environ=environ)
    assert await runner.version() == ""
    async with running(client, runner) as session:
        for _ in range(2):  # and again: the runner is still there
            with pytest.raises(TaskFailed) as failed:
                await (await client.submit("x", require=["code"])).result()
            message = failed.value.task.error.message
            assert "'/nowhere/claude' cannot be run" in message
            assert "agents.claude_code.cli_path (or CLAUDE_CLI_PATH)" in message
        assert not session.closed
        agent = await client.get_agent(session.agent_id)
        assert "cli_version" not in agent.card.labels


@pytest.mark.parametrize("kind", ["claude_code", "codex", "gemini_cli"])
async def test_garbage_output_fails_the_task(
    client: Client, kind: str, environ: dict[str, str]
) -> None:
    runner = CliRunner(kind, settings(), environ=environ)
    async with running(client, runner):
        handle = await client.submit("print garbage", require=["code"])
        with pytest.raises(TaskFailed) as failed:
            await handle.result()
        assert "printed no" in failed.value.task.error.message
        assert (await (await client.submit("fine", require=["code"])).result()).data


async def test_timeout_fails_naming_the_setting_and_kills_the_cli(
    client: Client, record: Path, environ: dict[str, str]
) -> None:
    runner = CliRunner("github_copilot", settings(timeout=1), kill_grace=0.2, environ=environ)
    async with running(client, runner):
        with pytest.raises(TaskFailed) as failed:
            await (await client.submit("hang", require=["code"])).result()
    assert "ran longer than 1 s (agents.github_copilot.timeout)" in failed.value.task.error.message
    [run] = records(record)
    assert records(record, "signal"), "the CLI never got SIGINT"
    assert gone(run["pid"])


@pytest.mark.parametrize("behaviour", ["linger", "hang"])
async def test_cancel_sends_sigint_then_sigkill(
    client: Client, record: Path, environ: dict[str, str], behaviour: str
) -> None:
    """`linger` exits on SIGINT; `hang` ignores it and is killed after the grace period."""
    runner = CliRunner("opencode", settings(), kill_grace=0.3, environ=environ)
    async with running(client, runner) as session:
        handle = await client.submit(behaviour, require=["code"])
        await wait_for(lambda: records(record, "waiting"))
        await handle.cancel("no longer needed")
        await wait_for(lambda: records(record, "signal"))
        [run] = records(record)
        await wait_for(lambda: gone(run["pid"]))
        await wait_for(lambda: session.running_tasks == 0)
        assert (await client.get_task(handle.id)).state == STATE.TASK_STATE_CANCELED


# A person in the loop ------------------------------------------------------------------


async def test_permission_prompt_answered_on_stdin(
    client: Client, record: Path, environ: dict[str, str]
) -> None:
    runner = CliRunner("github_copilot", settings(), environ=environ)
    async with running(client, runner) as session:
        handle = await client.submit("ask first", require=["code"])
        waiting = await asyncio.wait_for(until_state(handle, STATE.TASK_STATE_INPUT_REQUIRED), 15)
        assert waiting.input_prompt == "Allow copilot to run `make`? [y/n]"
        agent = await client.get_agent(session.agent_id)
        assert agent.status == agent_pb2.AGENT_STATUS_WAITING_INPUT
        await handle.provide_input("y")
        result = await asyncio.wait_for(handle.result(), 15)
        agent = await client.get_agent(session.agent_id)
    assert result.data.decode().endswith("copilot answer after 'y': ask first\n")
    assert [a["answer"] for a in records(record, "answer")] == ["y"]
    assert len(records(record)) == 1  # the same process got the answer
    assert agent.status == agent_pb2.AGENT_STATUS_ONLINE


async def test_permission_denial_answered_by_resuming_the_session(
    client: Client, record: Path, environ: dict[str, str]
) -> None:
    runner = CliRunner("claude_code", settings(), environ=environ)
    async with running(client, runner):
        handle = await client.submit("ask first", require=["code"])
        waiting = await asyncio.wait_for(until_state(handle, STATE.TASK_STATE_INPUT_REQUIRED), 15)
        assert waiting.input_prompt == 'permission needed: Bash {"command":"make"}. Allow?'
        await handle.provide_input("yes, run make")
        result = await asyncio.wait_for(handle.result(), 15)
    assert result.data.decode() == "resumed claude-session-1 with: yes, run make"
    first, second = records(record)
    assert first["argv"][1:3] == ["-p", "ask first"]
    assert second["argv"][1:] == [
        "-p",
        "yes, run make",
        "--resume",
        "claude-session-1",
        "--output-format",
        "stream-json",
        "--verbose",
        *SANDBOXED,
    ]


# Working directories, artifacts and handoff ----------------------------------------------


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def git_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q")
    (path / "a.txt").write_text("original\n")
    git(path, "add", "a.txt")
    git(path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    return path


def by_path(task: task_pb2.Task) -> dict[str, task_pb2.Artifact]:
    return {a.file.path: a for a in task.artifacts}


async def test_changed_files_become_artifacts_and_the_repository_is_untouched(
    client: Client, environ: dict[str, str], tmp_path: Path
) -> None:
    repo = git_repo(tmp_path / "repo")
    runner = CliRunner("claude_code", settings(), workdir=repo, environ=environ)
    async with running(client, runner):
        handle = await client.submit("edit:a.txt edit:new/b.txt", require=["code"])
        await handle.result()
        task = await client.get_task(handle.id)
    files = by_path(task)
    assert sorted(files) == ["a.txt", "new/b.txt"]
    edited = b"original\nedited by claude\n"
    assert files["a.txt"].data == edited
    assert files["a.txt"].sha256 == files["a.txt"].file.sha256 == hashlib.sha256(edited).hexdigest()
    assert "--- a/a.txt\n+++ b/a.txt" in files["a.txt"].file.diff
    assert "+edited by claude" in files["a.txt"].file.diff
    assert "new file mode" in files["new/b.txt"].file.diff
    assert (repo / "a.txt").read_text() == "original\n" and not (repo / "new").exists()
    assert git(repo, "status", "--porcelain") == ""
    assert len(git(repo, "worktree", "list").splitlines()) == 1


async def test_plain_directory_is_copied_and_diffed(
    client: Client, environ: dict[str, str], tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.txt").write_text("original\n")
    runner = CliRunner("opencode", settings(), workdir=plain, environ=environ)
    async with running(client, runner):
        handle = await client.submit("edit:a.txt", require=["code"])
        await handle.result()
        task = await client.get_task(handle.id)
    [artifact] = task.artifacts
    assert artifact.file.path == "a.txt"
    assert artifact.file.diff == (
        "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1,2 @@\n original\n+edited by opencode\n"
    )
    assert (plain / "a.txt").read_text() == "original\n"


async def test_concurrent_tasks_in_one_repository_do_not_see_each_other(
    client: Client, record: Path, environ: dict[str, str], tmp_path: Path
) -> None:
    repo = git_repo(tmp_path / "repo")
    runner = CliRunner("codex", settings(), workdir=repo, environ=environ)
    async with running(client, runner, max_tasks=2):
        handles = [await client.submit("sleep:0.5 edit:a.txt", require=["code"]) for _ in "ab"]
        await asyncio.gather(*(h.result() for h in handles))
        tasks = [await client.get_task(h.id) for h in handles]
    starts = [e["pid"] for e in records(record, "start")]
    assert len(starts) == 2
    for task in tasks:  # each saw the original file, never the other's edit
        assert by_path(task)["a.txt"].data == b"original\nedited by codex\n"
    assert len({run["cwd"] for run in records(record)}) == 2
    assert (repo / "a.txt").read_text() == "original\n"
    assert git(repo, "status", "--porcelain") == ""


async def test_handoff_from_claude_to_codex_presents_the_context(
    client: Client, record: Path, environ: dict[str, str], tmp_path: Path
) -> None:
    repo = git_repo(tmp_path / "repo")
    claude = CliRunner("claude_code", settings(), workdir=repo, environ=environ)
    codex = CliRunner("codex", settings(), workdir=repo, environ=environ)
    async with running(client, claude, caps="plan"), running(client, codex, caps="build"):
        first = await client.submit("edit:notes.md", require=["plan"])
        await first.result()
        child = await client.handoff(
            first.id,
            "implement the plan",
            require=["build"],
            kinds=[agent_pb2.AGENT_KIND_CODEX],
            summary="The plan is in notes.md",
            decisions=["keep the API"],
        )
        result = await asyncio.wait_for(child.result(), 15)
    prompt = result.data.decode()
    assert prompt.startswith("codex answer: implement the plan")
    assert ".agentplex/context.md" in prompt and ".agentplex/files/" in prompt
    seen = records(record, "context")[-1]
    assert seen["context_files"] == ["context.md", "files/notes.md", "task.json"]
    context = seen["context"]
    assert "The plan is in notes.md" in context and "- keep the API" in context
    assert "+edited by claude" in context  # the diff
    assert "claude answer: edit:notes.md" in context  # the earlier result


# Capacity and the command ----------------------------------------------------------------


async def test_max_concurrent_tasks_is_respected(
    client: Client, record: Path, environ: dict[str, str]
) -> None:
    runner = CliRunner("github_copilot", settings(max_concurrent_tasks=2), environ=environ)
    assert runner.card().max_concurrent_tasks == 2
    async with running(client, runner) as session:
        agent = await client.get_agent(session.agent_id)
        assert agent.card.max_concurrent_tasks == 2
        handles = [await client.submit("sleep:0.2", require=["code"]) for _ in range(5)]
        await asyncio.gather(*(h.result() for h in handles))
    active = peak = 0
    for entry in records(record, "start", "end"):
        active += 1 if entry["event"] == "start" else -1
        peak = max(peak, active)
    assert peak == 2


@pytest.fixture
def agent_process(hub: HubNode, record: Path) -> Iterator[subprocess.Popen[str]]:
    env = {
        **os.environ,
        "PATH": PATH,
        "STANDIN_RECORD": str(record),
        "AGENTPLEX_AGENTS__CODEX__CLI_PATH": str(DIR / "codex"),
        "AGENTPLEX_AGENTS__CODEX__ENV_ALLOW": "STANDIN_RECORD",
        "AGENTPLEX_AGENTS__CODEX__MAX_CONCURRENT_TASKS": "3",
        "STANDIN_EXTRA": "allowed on the command line",
    }
    command = ["agent", "--id", "codex-1", "--kind", "codex", "--capabilities", "go"]
    command += ["--env-allow", "STANDIN_EXTRA"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentplex", *command, "--hub", hub.grpc_address],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield proc
    proc.terminate()
    proc.wait(10)


def agentplex(*args: str, hub: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentplex", *args, "--hub", hub],
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_agent_command_runs_codex_and_agents_shows_version_and_load(
    client: Client, hub: HubNode, agent_process: subprocess.Popen[str], record: Path
) -> None:
    assert agent_process.stdout is not None
    assert "connected" in await asyncio.to_thread(agent_process.stdout.readline)
    result = await (await client.submit("port it", require=["go"])).result()
    assert result.data == b"codex answer: port it"
    [run] = records(record)
    assert run["argv"][0] == str(DIR / "codex")
    assert run["env"]["STANDIN_EXTRA"] == "allowed on the command line"
    assert "AGENTPLEX_AGENTS__CODEX__CLI_PATH" not in run["env"]
    table = await asyncio.to_thread(agentplex, "agents", hub=hub.grpc_address)
    assert table.stdout.strip().split("\t") == [
        "codex-1",
        "codex",
        "codex 9.9.9-standin",
        "online",
        "0/3",
        "go",
    ]


def test_agent_command_refuses_custom_without_a_command() -> None:
    out = agentplex("agent", "--kind", "custom", hub="127.0.0.1:1")
    assert out.returncode == 2 and "--kind custom needs --exec COMMAND" in out.stderr
    out = agentplex("agent", "--kind", "codex", "--exec", "cat", hub="127.0.0.1:1")
    assert out.returncode == 2 and "--exec is for --kind custom" in out.stderr


async def test_a_runner_carries_its_task_through_a_hub_restart(
    environ: dict[str, str], private_redis: RedisServer
) -> None:
    """The hub (Redis engine) is killed while a runner's CLI works and comes back on the same
    port: the runner reconnects by itself (waiting out the dead node's lease on its agent) and
    the task completes, exactly once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    args = ("--grpc-port", port, "--engine", "redis", "--redis-url", private_redis.url)
    env = {"AGENTPLEX_ENGINE__REDIS_PREFIX": f"restart{port}", "AGENTPLEX_ENGINE__NODE_TTL": "2"}
    runner = CliRunner("codex", settings(), environ=environ)
    with serve_process(*args, env=env) as (first, address):
        async with (
            Client(address) as agent_side,
            Client(address) as submitter,
            running(agent_side, runner),
        ):
            handle = await submitter.submit("sleep:3 then answer", require=["code"])
            await until_state(handle, STATE.TASK_STATE_WORKING)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            with serve_process(*args, env=env) as (_, again):
                assert again == address
                result = await asyncio.wait_for(handle.result(), 40)  # its watch resumes too
                assert b"codex answer" in result.data
                events = [e async for e in submitter.task(handle.task.id).events()]
    completed = [e for e in events if e.task.state == STATE.TASK_STATE_COMPLETED]
    assert len(completed) == 1
