"""One stand-in for every coding CLI: it takes each CLI's documented flags and prints each CLI's
documented output (Claude/Cursor stream-json, Codex JSONL, Gemini's JSON object, plain text for
Copilot and OpenCode), so runners are tested without the real tools.

What it does comes from words in the prompt:
  crash          exit 3 with a message on stderr
  hang           ignore SIGINT and sleep (the runner must SIGKILL it)
  linger         sleep until SIGINT, then exit 130
  garbage        print lines that are not the promised format, then exit 0
  ask            ask for permission: a [y/n] line answered on stdin (plain CLIs), or a result
                 with permission_denials continued by --resume (Claude, Cursor)
  edit:PATH      append a line to PATH in the working directory
  slow           sleep a random 0.1-1 s
  sleep:SECONDS  sleep that long
Every run appends one JSON line to $STANDIN_RECORD (argv, environment, cwd, the context files it
finds, and the signals it gets), so tests can assert exactly how the runner called it.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

VERSION = "9.9.9-standin"


def record(entry: dict[str, Any]) -> None:
    path = os.environ.get("STANDIN_RECORD")
    if path:
        line = json.dumps({"pid": os.getpid(), **entry}) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def prompt_of(cli: str, argv: list[str]) -> tuple[str, str]:
    """(prompt, resumed session id or "") from the CLI's own argument layout."""
    if cli == "codex":  # codex exec [flags] [resume SESSION] PROMPT
        session = argv[argv.index("resume") + 1] if "resume" in argv else ""
        return argv[-1], session
    if cli == "opencode":  # opencode run PROMPT
        return argv[argv.index("run") + 1], ""
    session = argv[argv.index("--resume") + 1] if "--resume" in argv else ""
    return argv[argv.index("-p") + 1], session


def out(line: Any) -> None:
    print(line if isinstance(line, str) else json.dumps(line), flush=True)


def context_seen() -> dict[str, Any]:
    base = Path(".agentplex")
    files = sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
    context = base / "context.md"
    return {"context_files": files, "context": context.read_text() if context.exists() else ""}


def behave(prompt: str) -> None:
    """The side effects the prompt asks for (sleeping, signals, edits, crashing)."""
    if "slow" in prompt:
        time.sleep(random.uniform(0.1, 1.0))
    if found := re.search(r"sleep:([\d.]+)", prompt):
        record({"event": "start"})
        time.sleep(float(found.group(1)))
        record({"event": "end"})
    for path in re.findall(r"edit:(\S+)", prompt):
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a") as f:
            f.write(f"edited by {os.environ.get('STANDIN_NAME', 'a stand-in')}\n")
    if "crash" in prompt:
        print("standin: something broke", file=sys.stderr, flush=True)
        sys.exit(3)
    if "hang" in prompt or "linger" in prompt:

        def interrupted(signum: int, frame: Any) -> None:
            record({"event": "signal", "signal": "SIGINT"})
            if "linger" in prompt:
                sys.exit(130)

        signal.signal(signal.SIGINT, interrupted)
        record({"event": "waiting"})
        while True:
            time.sleep(0.05)


def garbage() -> None:
    out("\x1b[31mnot json at all {{{")
    out("<html>oops</html>")
    sys.stdout.buffer.write(b"\xff\xfe binary \x00\n")
    sys.stdout.flush()


def claude_like(cli: str, prompt: str, session: str) -> None:
    sid = session or f"{cli}-session-1"
    out({"type": "system", "subtype": "init", "session_id": sid, "cwd": os.getcwd()})
    if "garbage" in prompt:
        garbage()
        return
    message = {"role": "assistant", "content": [{"type": "text", "text": "working on it"}]}
    out({"type": "assistant", "session_id": sid, "message": message})
    if cli == "cursor-agent":
        out({"type": "tool_call", "subtype": "started", "tool_call": {"readToolCall": {}}})
    if "ask" in prompt and not session:
        denial = {"tool_name": "Bash", "tool_use_id": "t1", "tool_input": {"command": "make"}}
        out(
            {
                "type": "result",
                "subtype": "success",
                "is_error": False,
                "session_id": sid,
                "result": "I need permission to run make",
                "permission_denials": [denial],
            }
        )
        return
    answer = f"resumed {session} with: {prompt}" if session else f"{cli} answer: {prompt}"
    out({"type": "result", "subtype": "success", "session_id": sid, "result": answer})


def codex(prompt: str, session: str) -> None:
    out({"type": "thread.started", "thread_id": session or "codex-thread-1"})
    out({"type": "turn.started"})
    if "garbage" in prompt:
        garbage()
        return
    out({"type": "item.completed", "item": {"id": "i0", "type": "reasoning", "text": "thinking"}})
    answer = f"codex answer: {prompt}"
    out({"type": "item.completed", "item": {"id": "i1", "type": "agent_message", "text": answer}})
    out({"type": "turn.completed", "usage": {"input_tokens": 1, "output_tokens": 1}})


def gemini(prompt: str) -> None:
    if "garbage" in prompt:
        garbage()
        return
    document = {"response": f"gemini answer: {prompt}", "stats": {"models": {}}}
    print(json.dumps(document, indent=2), flush=True)


def plain(cli: str, prompt: str) -> None:
    out("thinking...")
    if "ask" in prompt:
        out(f"Allow {cli} to run `make`? [y/n]")
        answer = sys.stdin.readline().strip()
        record({"event": "answer", "answer": answer})
        out(f"{cli} answer after '{answer}': {prompt}")
        return
    if "garbage" in prompt:
        garbage()
    out(f"{cli} answer: {prompt}")


def main(cli: str) -> None:
    args = sys.argv[1:]
    if args == ["--version"]:
        print(f"{cli} {VERSION}")
        return
    prompt, session = prompt_of(cli, args)
    env = dict(os.environ)
    record({"event": "run", "cli": cli, "argv": sys.argv, "env": env, "cwd": os.getcwd()})
    record({"event": "context", **context_seen()})
    os.environ["STANDIN_NAME"] = cli
    behave(prompt)
    if cli in ("claude", "cursor-agent"):
        claude_like(cli, prompt, session)
    elif cli == "codex":
        codex(prompt, session)
    elif cli == "gemini":
        gemini(prompt)
    else:
        plain(cli, prompt)
