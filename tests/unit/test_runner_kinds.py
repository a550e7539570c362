"""The pure parts of CLI runners: output parsers, follow-up runs, context files and diffs."""

from __future__ import annotations

import json

from agentplex.config import KindSettings
from agentplex.runners.kinds import KINDS, Event, Invocation, argv, follow_up, spec_of
from agentplex.runners.workspace import context_files, prompt_for, safe_relative, text_diff
from agentplex.v1 import task_pb2


def feed(kind: str, *lines: object) -> list[Event]:
    parser = KINDS[kind].parser()
    events: list[Event] = []
    for line in lines:
        events += parser.feed(line if isinstance(line, str) else json.dumps(line) + "\n")
    return events + parser.finish()


def test_stream_json_gives_session_progress_answer_and_permission_question() -> None:
    events = feed(
        "claude_code",
        {"type": "system", "subtype": "init", "session_id": "s1"},
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "hi"}]}},
        "not json\n",
        {"type": "result", "result": "done", "session_id": "s1", "permission_denials": []},
    )
    assert events == [
        Event(session="s1"),
        Event(progress="hi"),
        Event(progress="not json"),
        Event(session="s1", answer="done"),
    ]
    [denied] = feed(
        "cursor",
        {"type": "result", "result": "", "permission_denials": [{"tool_name": "Bash"}]},
    )
    assert denied.ask == "permission needed: Bash. Allow?"


def test_missing_or_failed_results_are_errors() -> None:
    assert feed("claude_code", "garbage\n")[-1].error == "claude printed no result event"
    assert feed("claude_code", {"type": "result", "is_error": True, "result": "no"})[-1].error
    assert (
        feed("codex", {"type": "turn.failed", "error": {"message": "quota"}})[-1].error == "quota"
    )
    assert feed("gemini_cli", '{"error": {"message": "bad key"}}\n')[-1].error == "bad key"
    assert feed("gemini_cli", "oops\n")[-1].error == "gemini printed no JSON result: oops"


def test_codex_answer_is_the_last_agent_message() -> None:
    message = {"type": "item.completed", "item": {"type": "agent_message", "text": "answer"}}
    events = feed(
        "codex", {"type": "thread.started", "thread_id": "t"}, message, {"type": "turn.completed"}
    )
    assert events[0].session == "t" and events[-1].answer == "answer"


def test_plain_output_is_the_answer_and_a_yes_no_line_a_question() -> None:
    events = feed("github_copilot", "working\n", "Delete build/? [y/N]\n")
    assert events[1].ask == "Delete build/? [y/N]"
    assert events[-1].answer == "working\nDelete build/? [y/N]\n"


def test_follow_up_resumes_where_the_cli_can_else_reruns_with_the_answer() -> None:
    inv = Invocation("do it", "/w", git=True, session="s1")
    assert follow_up(KINDS["codex"], inv, "do it", "ok?", "yes") == Invocation(
        "yes", "/w", True, True, "s1"
    )
    rerun = follow_up(KINDS["gemini_cli"], inv, "do it", "ok?", "yes")
    assert rerun.session == "" and rerun.prompt.endswith("You asked: ok?\nThe answer: yes")
    resumed = argv(KINDS["codex"], KindSettings(cli_path="/bin/codex"), replace_prompt(inv))
    assert resumed == [
        "/bin/codex",
        "exec",
        "--json",
        "--sandbox",
        "workspace-write",
        "resume",
        "s1",
        "go",
    ]


def replace_prompt(inv: Invocation) -> Invocation:
    return Invocation("go", inv.workdir, inv.git, inv.sandbox, inv.session)


def test_custom_template_quotes_and_stdin_rules() -> None:
    with_prompt = spec_of("custom", "run {prompt} in {workdir}")
    assert with_prompt.stdin_open and not with_prompt.prompt_on_stdin
    command = argv(with_prompt, KindSettings(), Invocation("a 'b'", "/w d", git=False))
    assert command == ["/bin/sh", "-c", "run 'a '\"'\"'b'\"'\"'' in '/w d'"]
    assert spec_of("custom", "cat").prompt_on_stdin


def test_context_files_and_prompt() -> None:
    task = task_pb2.Task(id="t1", input=task_pb2.Payload(data=b"go"))
    assert prompt_for(task) == "go" and set(context_files(task)) == {".agentplex/task.json"}
    task.context.summary = "so far"
    task.context.files.add(path="../escape", content=b"x")
    task.context.files.add(path="src/a.py", content=b"print()", diff="+print()")
    files = context_files(task)
    assert files[".agentplex/files/src/a.py"] == b"print()"
    assert not any("escape" in name for name in files)
    assert "```diff\n+print()\n```" in files[".agentplex/context.md"].decode()
    assert ".agentplex/context.md" in prompt_for(task)
    assert safe_relative("/abs/p") == "abs/p" and safe_relative("a/../../b") is None


def test_text_diff_is_git_like() -> None:
    assert text_diff("n.txt", None, b"x\n") == "--- /dev/null\n+++ b/n.txt\n@@ -0,0 +1 @@\n+x\n"
    assert text_diff("b.bin", b"\xff", b"\xfe").startswith("Binary files")
