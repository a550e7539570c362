"""CLI agents: run Claude Code, Cursor, Copilot, Gemini CLI, Codex, OpenCode or any command as
an agentplex agent, one subprocess per task in a working directory of its own.

`kinds` (pure) knows each CLI's command line and output; `workspace` prepares the directory and
collects what changed; `process` runs one CLI process; `runner` ties them to an SDK task.
"""

from agentplex.runners.kinds import KINDS, Event, KindSpec, spec_of
from agentplex.runners.runner import CliRunner, RunnerError

__all__ = ["KINDS", "CliRunner", "Event", "KindSpec", "RunnerError", "spec_of"]
