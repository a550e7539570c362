"""Each CLI kind as data: how its real CLI runs one prompt non-interactively, how it is resumed
with more input, its restricted (sandbox) mode, and how its output lines become events. Pure:
no I/O, so every command line and every parse is testable on its own.

What each CLI documents (checked June 2026):
- Claude Code: `claude -p PROMPT --output-format stream-json --verbose` writes JSON lines:
  `system`/`init` (session_id), `assistant` messages, a final `result` (result, is_error,
  permission_denials); `--resume SESSION_ID` continues a session (docs.claude.com, headless).
- Cursor: `cursor-agent -p PROMPT --output-format stream-json` mirrors Claude's stream-json
  (plus `tool_call` events); `--resume CHAT_ID` continues a chat (cursor.com/docs/cli).
- GitHub Copilot CLI: `copilot -p PROMPT` prints the answer as text; piped stdin is ignored when
  -p is given; `--allow-all-tools` lifts the per-tool permission checks (docs.github.com,
  cli-programmatic-reference).
- Gemini CLI: `gemini -p PROMPT --output-format json` prints one JSON object {response, stats,
  error}; `--sandbox` runs tools in its container sandbox (geminicli.com/docs/cli/headless).
- Codex: `codex exec --json PROMPT` writes JSON lines `thread.started` (thread_id),
  `item.completed` (agent_message, reasoning, command_execution, file_change), `turn.completed`,
  `turn.failed`, `error`; `exec resume SESSION_ID PROMPT` continues; `--sandbox
  workspace-write` allows edits in the working directory only; outside a git repository it needs
  `--skip-git-repo-check` (developers.openai.com, non-interactive mode).
- OpenCode: `opencode run PROMPT` prints the reply as text (opencode.ai/docs/cli).

Claude, Gemini, Codex and OpenCode read piped stdin as extra prompt text, so their stdin is
closed at once and an answer reaches them by resuming (Claude, Cursor, Codex) or by a new run
that carries the question and the answer. Copilot ignores stdin with -p and a `custom` command
that takes `{prompt}` has its stdin free, so for them stdin stays open and an answer to a
`[y/n]`-style prompt line is written there.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Protocol

from agentplex.config import KindSettings

CUSTOM = "custom"


@dataclass(frozen=True, slots=True)
class Event:
    """What one output line meant: progress text, the final answer, a question for a person,
    the CLI's session id, or an error the CLI reported."""

    progress: str = ""
    answer: str | None = None
    ask: str = ""
    session: str = ""
    error: str = ""


class Parser(Protocol):
    def feed(self, line: str) -> list[Event]: ...

    def finish(self) -> list[Event]: ...


# A line that waits for a yes/no answer: "Allow edit to main.py? [y/n]".
PROMPT_LINE = re.compile(r"[\[(](?:y/n|yes/no)[\])]\s*:?\s*$", re.IGNORECASE)


class PlainParser:
    """Plain text: every line is progress, the whole output is the answer, and a line ending
    in a [y/n] prompt is a question for a person."""

    def __init__(self) -> None:
        self.text: list[str] = []

    def feed(self, line: str) -> list[Event]:
        self.text.append(line)
        shown = line.rstrip("\r\n")
        if not shown:
            return []
        return [Event(progress=shown, ask=shown if PROMPT_LINE.search(shown) else "")]

    def finish(self) -> list[Event]:
        return [Event(answer="".join(self.text))]


def _json_object(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _garbage(line: str) -> list[Event]:
    """A line that is not the JSON the CLI promised: shown as text, never fatal by itself."""
    shown = line.strip()
    return [Event(progress=shown)] if shown else []


class StreamJsonParser:
    """Claude Code's stream-json (Cursor's is the same shape, with `tool_call` events)."""

    def __init__(self, cli: str) -> None:
        self.cli = cli
        self.done = False

    def feed(self, line: str) -> list[Event]:
        event = _json_object(line)
        if event is None:
            return _garbage(line)
        kind, session = event.get("type"), str(event.get("session_id") or "")
        if kind == "system":
            return [Event(session=session)] if session else []
        if kind == "assistant":
            return [Event(progress=text) for text in _content_texts(event.get("message"))]
        if kind == "tool_call" and event.get("subtype") == "started":
            return [Event(progress=f"[tool] {_first_key(event.get('tool_call'))}")]
        if kind == "result":
            self.done = True
            text = str(event.get("result") or "")
            if event.get("is_error") or str(event.get("subtype", "")).startswith("error"):
                return [Event(session=session, error=text or str(event.get("subtype")))]
            ask = _denials(event.get("permission_denials"))
            return [Event(session=session, answer=text, ask=ask)]
        return []

    def finish(self) -> list[Event]:
        return [] if self.done else [Event(error=f"{self.cli} printed no result event")]


def _content_texts(message: Any) -> list[str]:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and block.get("text"):
            texts.append(str(block["text"]))
        elif block.get("type") == "tool_use":
            texts.append(f"[tool] {block.get('name')} {_short(block.get('input'))}")
    return texts


def _first_key(value: Any) -> str:
    return next(iter(value), "tool") if isinstance(value, dict) else "tool"


def _short(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, separators=(",", ":")) if value is not None else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _denials(denials: Any) -> str:
    """Claude's permission_denials as a question: the tools it was not allowed to use."""
    if not isinstance(denials, list) or not denials:
        return ""
    asked = [
        f"{d.get('tool_name', 'tool')} {_short(d.get('tool_input'))}".strip()
        for d in denials
        if isinstance(d, dict)
    ]
    return "permission needed: " + "; ".join(asked) + ". Allow?"


class CodexParser:
    """`codex exec --json` events; the answer is the last agent message of the turn."""

    def __init__(self) -> None:
        self.last_message = ""
        self.done = False

    def feed(self, line: str) -> list[Event]:
        event = _json_object(line)
        if event is None:
            return _garbage(line)
        kind = event.get("type")
        if kind == "thread.started":
            return [Event(session=str(event.get("thread_id") or ""))]
        if kind == "item.completed" and isinstance(event.get("item"), dict):
            return self._item(event["item"])
        if kind == "turn.completed":
            self.done = True
            return [Event(answer=self.last_message)]
        if kind in ("turn.failed", "error"):
            self.done = True
            error = event.get("error") if kind == "turn.failed" else event
            message = error.get("message") if isinstance(error, dict) else None
            return [Event(error=str(message or "codex reported a failure"))]
        return []

    def _item(self, item: dict[str, Any]) -> list[Event]:
        kind = item.get("type") or item.get("item_type")
        if kind == "agent_message":
            self.last_message = str(item.get("text") or "")
            return [Event(progress=self.last_message)]
        if kind == "command_execution":
            return [Event(progress=f"$ {item.get('command', '')}")]
        if kind == "file_change":
            paths = [c.get("path", "") for c in item.get("changes") or [] if isinstance(c, dict)]
            return [Event(progress="changed " + ", ".join(paths))]
        text = item.get("text")
        return [Event(progress=str(text))] if text else []

    def finish(self) -> list[Event]:
        return [] if self.done else [Event(error="codex printed no turn.completed event")]


class JsonDocumentParser:
    """Gemini's `--output-format json`: one (pretty-printed) JSON object once the run ends."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def feed(self, line: str) -> list[Event]:
        self.lines.append(line)
        return []

    def finish(self) -> list[Event]:
        text = "".join(self.lines)
        start = text.find("{")
        document = _json_object(text[start:]) if start >= 0 else None
        if document is None:
            tail = text.strip()[-300:]
            return [Event(error="gemini printed no JSON result" + (f": {tail}" if tail else ""))]
        error = document.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else error
            return [Event(error=str(message))]
        return [Event(answer=str(document.get("response") or ""))]


@dataclass(frozen=True, slots=True)
class Invocation:
    """One run of a CLI: its prompt, the session it continues ("" for a new one), whether it
    runs restricted, and where."""

    prompt: str
    workdir: str
    git: bool
    sandbox: bool = True
    session: str = ""


@dataclass(frozen=True, slots=True)
class KindSpec:
    kind: str
    program: str
    build: Callable[[Invocation], list[str]]
    parser: Callable[[], Parser]
    # Answers go to stdin (the CLI leaves it alone); otherwise stdin is closed at start.
    stdin_open: bool = False
    # The prompt is written to stdin (then closed) instead of passed as an argument.
    prompt_on_stdin: bool = False
    # Takes `session` to continue a conversation with a new prompt.
    resumes: bool = False


def _claude(inv: Invocation) -> list[str]:
    # acceptEdits: edits are confined to the task's own worktree anyway; shell commands and
    # other tools still need permission, which headless Claude reports as permission_denials
    # (a question for a person). Without sandbox the CLI's own configured mode applies.
    resume = ["--resume", inv.session] if inv.session else []
    mode = ["--permission-mode", "acceptEdits"] if inv.sandbox else []
    return ["-p", inv.prompt, *resume, "--output-format", "stream-json", "--verbose", *mode]


def _cursor(inv: Invocation) -> list[str]:
    # Cursor's print mode may already write files; without sandbox --force also runs commands.
    resume = ["--resume", inv.session] if inv.session else []
    force = [] if inv.sandbox else ["--force"]
    return ["-p", inv.prompt, *resume, "--output-format", "stream-json", *force]


def _copilot(inv: Invocation) -> list[str]:
    # In -p mode tools that are not allowed are refused; without sandbox every tool is allowed.
    return ["-p", inv.prompt, *([] if inv.sandbox else ["--allow-all-tools"])]


def _gemini(inv: Invocation) -> list[str]:
    return ["-p", inv.prompt, "--output-format", "json", *(["--sandbox"] if inv.sandbox else [])]


def _codex(inv: Invocation) -> list[str]:
    # codex exec is read-only by default: workspace-write lets it edit the task's directory.
    sandbox = ["--sandbox", "workspace-write" if inv.sandbox else "danger-full-access"]
    outside_git = [] if inv.git else ["--skip-git-repo-check"]
    resume = ["resume", inv.session] if inv.session else []
    return ["exec", "--json", *sandbox, *outside_git, *resume, inv.prompt]


def _opencode(inv: Invocation) -> list[str]:
    return ["run", inv.prompt]


_claude_events = partial(StreamJsonParser, "claude")
_cursor_events = partial(StreamJsonParser, "cursor-agent")

KINDS: dict[str, KindSpec] = {
    spec.kind: spec
    for spec in (
        KindSpec("claude_code", "claude", _claude, _claude_events, resumes=True),
        KindSpec("cursor", "cursor-agent", _cursor, _cursor_events, resumes=True),
        KindSpec("github_copilot", "copilot", _copilot, PlainParser, stdin_open=True),
        KindSpec("gemini_cli", "gemini", _gemini, JsonDocumentParser),
        KindSpec("codex", "codex", _codex, CodexParser, resumes=True),
        KindSpec("opencode", "opencode", _opencode, PlainParser),
    )
}


def custom_spec(template: str) -> KindSpec:
    """A command template run by /bin/sh: `{prompt}` and `{workdir}` are replaced, shell-quoted.
    Without `{prompt}` the prompt arrives on stdin (as `agentplex agent --exec` always did)."""

    def build(inv: Invocation) -> list[str]:
        command = template.replace("{prompt}", shlex.quote(inv.prompt))
        return ["-c", command.replace("{workdir}", shlex.quote(inv.workdir))]

    takes_prompt = "{prompt}" in template
    return KindSpec(
        CUSTOM,
        "/bin/sh",
        build,
        PlainParser,
        stdin_open=takes_prompt,
        prompt_on_stdin=not takes_prompt,
    )


def spec_of(kind: str, template: str = "") -> KindSpec:
    if kind == CUSTOM:
        if not template:
            raise ValueError("--kind custom needs --exec COMMAND")
        return custom_spec(template)
    if kind not in KINDS:
        raise ValueError(f"--kind {kind!r} is not one of {', '.join([*KINDS, CUSTOM])}")
    return KINDS[kind]


def argv(spec: KindSpec, settings: KindSettings, inv: Invocation) -> list[str]:
    """The full command line: the configured CLI path, the kind's flags, then extra_args."""
    program = settings.cli_path or spec.program
    return [program, *spec.build(inv), *shlex.split(settings.extra_args)]


def follow_up(
    spec: KindSpec, inv: Invocation, first_prompt: str, question: str, answer: str
) -> Invocation:
    """The run that carries a person's answer once the CLI has exited: the same session
    resumed with the answer where the CLI resumes, else a new run whose prompt holds the
    original prompt, the question and the answer."""
    if spec.resumes and inv.session:
        return replace(inv, prompt=answer)
    prompt = f"{first_prompt}\n\nYou asked: {question}\nThe answer: {answer}"
    return replace(inv, prompt=prompt, session="")
