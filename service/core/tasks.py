"""The task state machine and submission checks (no I/O).

States follow A2A: SUBMITTED -> ASSIGNED -> WORKING <-> INPUT_REQUIRED, ending in COMPLETED,
FAILED, CANCELED or REJECTED. Every agent update names the attempt it belongs to; an update for
any other attempt (or from another agent) is stale and refused.
"""

from __future__ import annotations

from agentplex.core.limits import Limits
from agentplex.core.validation import (
    check_enum,
    check_id,
    check_map,
    check_text,
    check_timestamp,
)
from agentplex.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from agentplex.v1 import agent_pb2, task_pb2

S = task_pb2
SUBMITTED = S.TASK_STATE_SUBMITTED
ASSIGNED = S.TASK_STATE_ASSIGNED
WORKING = S.TASK_STATE_WORKING
INPUT_REQUIRED = S.TASK_STATE_INPUT_REQUIRED
COMPLETED = S.TASK_STATE_COMPLETED
FAILED = S.TASK_STATE_FAILED
CANCELED = S.TASK_STATE_CANCELED
REJECTED = S.TASK_STATE_REJECTED

TERMINAL = frozenset({COMPLETED, FAILED, CANCELED, REJECTED})
HELD = frozenset({ASSIGNED, WORKING, INPUT_REQUIRED})  # an agent holds the task

# Which states each agent update may start from, and where it leads.
UPDATES: dict[str, tuple[frozenset[int], int | None]] = {
    "accept": (frozenset({ASSIGNED, WORKING}), WORKING),
    "progress": (frozenset({ASSIGNED, WORKING}), WORKING),
    "artifact": (frozenset({ASSIGNED, WORKING, INPUT_REQUIRED}), None),
    "input_needed": (frozenset({ASSIGNED, WORKING}), INPUT_REQUIRED),
    "result": (frozenset(HELD), COMPLETED),
    "failure": (frozenset(HELD), FAILED),
    "reject": (frozenset({ASSIGNED, WORKING}), None),
}


_NAMES = {
    v.number: v.name.removeprefix("TASK_STATE_") for v in task_pb2.TaskState.DESCRIPTOR.values
}


def state_name(state: int) -> str:
    return _NAMES.get(state, str(state))


def is_terminal(task: task_pb2.Task) -> bool:
    return task.state in TERMINAL


def check_state(state: int, field: str) -> None:
    check_enum(state, task_pb2.TaskState, field, allow_unspecified=False)


def check_update(task: task_pb2.Task, agent_id: str, attempt: int, kind: str) -> int | None:
    """Refuse a stale or out-of-order update; return the state it leads to (None: unchanged)."""
    if task.assigned_agent_id == agent_id and attempt == task.attempt and task.state in TERMINAL:
        raise FailedPrecondition(
            f"task {task.id} is {state_name(task.state)}: it takes no more updates"
        )
    if task.assigned_agent_id != agent_id or attempt != task.attempt or task.state not in HELD:
        raise FailedPrecondition(
            f"attempt {attempt} of task {task.id} is stale: the task is on attempt "
            f"{task.attempt}, {state_name(task.state)}"
            + (f" with agent {task.assigned_agent_id}" if task.assigned_agent_id else "")
        )
    allowed, target = UPDATES[kind]
    if task.state not in allowed:
        raise FailedPrecondition(
            f"task {task.id} is {state_name(task.state)}: {kind} is not possible now"
        )
    return target


def check_submission(task: task_pb2.Task, limits: Limits, max_attempts: int) -> None:
    """Everything a submitter controls."""
    check_id(task.id, "task.id", limits)
    check_id(task.idempotency_key, "task.idempotency_key", limits)
    check_id(task.target_agent_id, "task.target_agent_id", limits)
    check_id(task.parent_task_id, "task.parent_task_id", limits)
    if task.HasField("deadline"):
        check_timestamp(task.deadline, "task.deadline")
    if len(task.required_capabilities) > limits.max_capabilities:
        raise InvalidArgument(
            f"task.required_capabilities has {len(task.required_capabilities)} entries, over "
            f"the limit of {limits.max_capabilities} (limits.max_capabilities)"
        )
    for i, cap in enumerate(task.required_capabilities):
        if not cap or len(cap) > 100 or " " in cap or not cap.isprintable():
            raise InvalidArgument(
                f"task.required_capabilities[{i}]: {cap[:50]!r} must be 1 to 100 printable "
                "characters without spaces"
            )
    for i, kind in enumerate(task.preferred_kinds):
        check_enum(kind, agent_pb2.AgentKind, f"task.preferred_kinds[{i}]", allow_unspecified=False)
    if task.max_attempts > max_attempts:
        raise InvalidArgument(
            f"task.max_attempts {task.max_attempts} is over the limit of {max_attempts} "
            "(tasks.max_attempts)"
        )
    size = task.input.ByteSize() + task.context.ByteSize()
    if size > limits.max_payload_bytes:
        raise ResourceExhausted(
            f"task input and context are {size} bytes, over the limit of "
            f"{limits.max_payload_bytes} (limits.max_payload_bytes)"
        )
    check_map(task.labels, "task.labels", limits, limits.max_labels, "limits.max_labels", task)
    check_text(task.context.git_ref, "task.context.git_ref", limits)


def event_view(task: task_pb2.Task, view: task_pb2.Task | None = None) -> task_pb2.Task:
    """The task as change events carry it: without the submitted input and context, and with
    artifact metadata only, so the events kept per task and on `_sys.tasks` stay small. Made
    in `view` when given (an event's own `task`, to spare a copy)."""
    if view is None:
        view = task_pb2.Task()
    view.CopyFrom(task)
    view.ClearField("input")
    view.ClearField("context")
    for artifact in view.artifacts:
        artifact.ClearField("data")
    return view


def handoff_context(
    parent: task_pb2.Task, agent_kind: int, summary: str, decisions: list[str]
) -> task_pb2.ContextPackage:
    """The child's context: the parent's package, plus the parent's outcome as a prior result,
    plus what the handing-off party adds."""
    package = task_pb2.ContextPackage()
    package.CopyFrom(parent.context)
    prior = package.prior_results.add(
        task_id=parent.id,
        agent_id=parent.assigned_agent_id,
        agent_kind=agent_kind,
        summary=parent.status_message,
    )
    if parent.HasField("result"):
        prior.result.CopyFrom(parent.result)
    prior.artifacts.extend(parent.artifacts)
    for artifact in parent.artifacts:
        if artifact.HasField("file"):
            package.files.append(artifact.file)
    if summary:
        package.summary = f"{package.summary}\n\n{summary}".strip() if package.summary else summary
    package.decisions.extend(decisions)
    return package
