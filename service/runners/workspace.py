"""A working directory per task: a detached `git worktree` of --workdir when it is a git
repository (so concurrent tasks never see each other's edits and the repository's own tree is
never touched), else a fresh temporary directory (holding a copy of --workdir when one is
given). The task's context package is written under `.agentplex/` for the CLI to read; after
the run every changed file becomes an artifact with its sha256 and a unified diff.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import hashlib
import json
import mimetypes
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from agentplex.v1 import agent_pb2, task_pb2

CONTEXT_DIR = ".agentplex"
# Files larger than this travel as path, sha256 and diff only.
MAX_INLINE = 256 * 1024
MAX_DIFF = 256 * 1024


class WorkspaceError(Exception):
    pass


# The context package as files (pure) -------------------------------------------------------


def has_context(package: task_pb2.ContextPackage) -> bool:
    return bool(
        package.summary
        or package.decisions
        or package.files
        or package.prior_results
        or package.git_ref
        or package.metadata
    )


def safe_relative(path: str) -> str | None:
    """`path` as a relative POSIX path inside a directory, or None when it would escape."""
    parts = [p for p in PurePosixPath(path.replace("\\", "/")).parts if p not in ("", ".", "/")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def _text(payload: task_pb2.Payload) -> str:
    if payload.content_type and not payload.content_type.startswith(("text/", "application/json")):
        return f"<{len(payload.data)} bytes {payload.content_type}>"
    return payload.data.decode(errors="replace")


def context_markdown(task: task_pb2.Task) -> str:
    package = task.context
    out = [f"# Context for task {task.id}", ""]
    if package.summary:
        out += ["## Summary", "", package.summary, ""]
    if package.decisions:
        out += ["## Decisions", "", *(f"- {d}" for d in package.decisions), ""]
    if package.git_ref:
        out += [f"Git ref: `{package.git_ref}`", ""]
    if package.files:
        out += ["## Files", ""]
        for ref in package.files:
            where = safe_relative(ref.path)
            copy = f", copy in {CONTEXT_DIR}/files/{where}" if ref.content and where else ""
            out.append(f"- `{ref.path}` (sha256 {ref.sha256 or '-'}{copy})")
            if ref.diff:
                out += ["", "```diff", ref.diff.rstrip("\n"), "```"]
        out.append("")
    for prior in package.prior_results:
        kind = agent_pb2.AgentKind.Name(prior.agent_kind).removeprefix("AGENT_KIND_").lower()
        out += [f"## Earlier task {prior.task_id} by {prior.agent_id or '-'} ({kind})", ""]
        if prior.summary:
            out += [prior.summary, ""]
        if prior.result.data:
            out += ["Result:", "", _text(prior.result), ""]
    if package.metadata:
        out += ["## Metadata", "", *(f"- {k}: {v}" for k, v in sorted(package.metadata.items()))]
    return "\n".join(out).rstrip("\n") + "\n"


def context_files(task: task_pb2.Task) -> dict[str, bytes]:
    """Relative path -> content of what is written for the CLI to read."""
    files: dict[str, bytes] = {}
    package = task.context
    for ref in package.files:
        where = safe_relative(ref.path)
        if ref.content and where:
            files[f"{CONTEXT_DIR}/files/{where}"] = ref.content
    summary = {
        "id": task.id,
        "parent_task_id": task.parent_task_id,
        "input": _text(task.input),
        "content_type": task.input.content_type,
        "required_capabilities": list(task.required_capabilities),
        "labels": dict(task.labels),
        "context": f"{CONTEXT_DIR}/context.md" if has_context(package) else None,
    }
    files[f"{CONTEXT_DIR}/task.json"] = json.dumps(summary, indent=2).encode()
    if has_context(package):
        files[f"{CONTEXT_DIR}/context.md"] = context_markdown(task).encode()
    return files


def prompt_for(task: task_pb2.Task) -> str:
    """The task's input as the CLI's prompt, naming the context files when there are any."""
    prompt = task.input.data.decode(errors="replace")
    if not has_context(task.context):
        return prompt
    return (
        f"{prompt}\n\n---\nThis continues earlier work: read {CONTEXT_DIR}/context.md (summary, "
        f"decisions, files and earlier results); files it names are copied under "
        f"{CONTEXT_DIR}/files/. The task is described in {CONTEXT_DIR}/task.json."
    )


# Changed files as artifacts (pure) ---------------------------------------------------------


def file_artifact(path: str, content: bytes | None, diff: str) -> task_pb2.Artifact:
    """An artifact for one changed file; `content` None means it was deleted."""
    data = content or b""
    digest = hashlib.sha256(data).hexdigest() if content is not None else ""
    inline = data if len(data) <= MAX_INLINE else b""
    if len(diff) > MAX_DIFF:
        diff = diff[:MAX_DIFF] + "\n... (diff truncated)\n"
    change = "deleted" if content is None else "changed"
    return task_pb2.Artifact(
        id=f"file:{path}",
        name=path,
        content_type=mimetypes.guess_type(path)[0] or "application/octet-stream",
        data=inline,
        sha256=digest,
        metadata={"change": change},
        last_chunk=True,
        file=task_pb2.FileRef(path=path, sha256=digest, content=inline, diff=diff),
    )


def text_diff(path: str, old: bytes | None, new: bytes | None) -> str:
    """A unified diff like git's (a/ and b/ prefixes, /dev/null for a missing side)."""
    try:
        before = (old or b"").decode().splitlines(keepends=True)
        after = (new or b"").decode().splitlines(keepends=True)
    except UnicodeDecodeError:
        return f"Binary files a/{path} and b/{path} differ\n"
    return "".join(
        difflib.unified_diff(
            before,
            after,
            f"a/{path}" if old is not None else "/dev/null",
            f"b/{path}" if new is not None else "/dev/null",
        )
    )


# The directory (I/O) -----------------------------------------------------------------------


async def _git(cwd: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise WorkspaceError(f"git {args[0]} failed in {cwd}: {err.decode(errors='replace')}")
    return out.decode(errors="replace")


async def git_location(path: Path) -> tuple[Path, str] | None:
    """The repository's top level and `path` relative to it, None outside a git repository."""
    try:
        out = await _git(path, "rev-parse", "--show-toplevel", "--show-prefix")
        top, prefix = out.split("\n")[:2]
    except (WorkspaceError, OSError):
        return None
    return Path(top), prefix


def _snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under root, the context directory left out."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d not in (CONTEXT_DIR, ".git")]
        for name in filenames:
            full = Path(dirpath, name)
            if full.is_file():
                found[full.relative_to(root).as_posix()] = hashlib.sha256(
                    full.read_bytes()
                ).hexdigest()
    return found


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


@dataclass
class Workspace:
    root: Path  # the worktree or directory root
    cwd: Path  # where the CLI runs (the same place as --workdir inside the worktree)
    git: bool
    source: Path | None = None  # what a plain directory was copied from
    before: dict[str, str] = field(default_factory=dict)

    def write(self, files: dict[str, bytes]) -> None:
        for relative, content in files.items():
            target = self.cwd / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)

    async def changes(self) -> list[task_pb2.Artifact]:
        if self.git:
            return await self._git_changes()
        return await asyncio.to_thread(self._plain_changes)

    async def _git_changes(self) -> list[task_pb2.Artifact]:
        exclude = f":(exclude,glob)**/{CONTEXT_DIR}/**"
        await _git(self.root, "add", "-A", "--", ".", exclude)
        names = await _git(self.root, "diff", "--cached", "--name-only", "-z", "HEAD")
        artifacts = []
        for path in filter(None, names.split("\0")):
            diff = await _git(self.root, "diff", "--cached", "HEAD", "--", path)
            artifacts.append(file_artifact(path, _read(self.root / path), diff))
        return artifacts

    def _plain_changes(self) -> list[task_pb2.Artifact]:
        after = _snapshot(self.root)
        artifacts = []
        for path in sorted(set(self.before) | set(after)):
            if self.before.get(path) == after.get(path):
                continue
            old = _read(self.source / path) if self.source and path in self.before else None
            new = _read(self.root / path)
            artifacts.append(file_artifact(path, new, text_diff(path, old, new)))
        return artifacts


def _plain(workdir: Path | None, root: Path) -> Workspace:
    if workdir is None:
        root.mkdir()
        return Workspace(root, root, git=False)
    shutil.copytree(workdir, root, symlinks=True)
    return Workspace(root, root, git=False, source=workdir, before=_snapshot(root))


@asynccontextmanager
async def workspace(workdir: Path | None, task_id: str) -> AsyncIterator[Workspace]:
    """A directory for one task, removed (worktree and all) when the task is done. File work
    runs in a thread, so a large copy never stalls the session's heartbeats."""
    base = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=f"agentplex-{task_id[:16]}-"))
    root = base / "work"
    found = await git_location(workdir) if workdir is not None else None
    top = found[0] if found else None
    try:
        if found is not None:
            await _git(found[0], "worktree", "add", "--detach", str(root), "HEAD")
            yield Workspace(root, root / found[1], git=True)
        else:
            yield await asyncio.to_thread(_plain, workdir, root)
    finally:
        await asyncio.to_thread(shutil.rmtree, base, True)
        if top is not None:
            # The directory is gone; prune drops the worktree's bookkeeping in the repository.
            with contextlib.suppress(WorkspaceError, OSError):
                await _git(top, "worktree", "prune")
