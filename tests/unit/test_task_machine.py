"""The task state machine (no I/O): agent updates, stale attempts, terminal states, submission
checks and the handoff context package."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypeAlias

import pytest
from hypothesis import event, given, settings, strategies as st

from agentplex.core import tasks as machine
from agentplex.core.limits import Limits
from agentplex.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from agentplex.v1 import agent_pb2, task_pb2

SUBMITTED = task_pb2.TASK_STATE_SUBMITTED
ASSIGNED = task_pb2.TASK_STATE_ASSIGNED
WORKING = task_pb2.TASK_STATE_WORKING
INPUT_REQUIRED = task_pb2.TASK_STATE_INPUT_REQUIRED
COMPLETED = task_pb2.TASK_STATE_COMPLETED
FAILED = task_pb2.TASK_STATE_FAILED
CANCELED = task_pb2.TASK_STATE_CANCELED
REJECTED = task_pb2.TASK_STATE_REJECTED

StateT: TypeAlias = task_pb2.TaskState.ValueType
STATES = [StateT(v.number) for v in task_pb2.TaskState.DESCRIPTOR.values if v.number]
TERMINAL = {COMPLETED, FAILED, CANCELED, REJECTED}
HELD = {ASSIGNED, WORKING, INPUT_REQUIRED}
KINDS = ["accept", "progress", "artifact", "input_needed", "result", "failure", "reject"]
AGENTS = ["a", "b", "c"]

# The transitions, written out from DESIGN.md (A2A states): where each update may come from
# and where it leads (None: the state stays; reject sends the task back to the queue).
EXPECTED: dict[str, tuple[set[int], int | None]] = {
    "accept": ({ASSIGNED, WORKING}, WORKING),
    "progress": ({ASSIGNED, WORKING}, WORKING),
    "artifact": ({ASSIGNED, WORKING, INPUT_REQUIRED}, None),
    "input_needed": ({ASSIGNED, WORKING}, INPUT_REQUIRED),
    "result": ({ASSIGNED, WORKING, INPUT_REQUIRED}, COMPLETED),
    "failure": ({ASSIGNED, WORKING, INPUT_REQUIRED}, FAILED),
    "reject": ({ASSIGNED, WORKING}, None),
}


def held_task(state: StateT = ASSIGNED, agent: str = "a", attempt: int = 1) -> task_pb2.Task:
    return task_pb2.Task(
        id="t1", state=state, assigned_agent_id=agent, attempt=attempt, max_attempts=3
    )


# The transition table ---------------------------------------------------------------------------


def test_the_update_table_is_the_designed_one() -> None:
    assert set(machine.UPDATES) == set(EXPECTED)
    for kind, (sources, target) in EXPECTED.items():
        assert machine.UPDATES[kind] == (frozenset(sources), target), kind
    assert machine.TERMINAL == TERMINAL
    assert machine.HELD == HELD


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("state", STATES)
def test_check_update_from_every_state(kind: str, state: StateT) -> None:
    task = held_task(state)
    sources, target = EXPECTED[kind]
    if state in sources:
        assert machine.check_update(task, "a", 1, kind) == target
        return
    with pytest.raises(FailedPrecondition) as err:
        machine.check_update(task, "a", 1, kind)
    message = str(err.value)
    assert "t1" in message
    assert machine.state_name(state) in message
    if state in TERMINAL:
        assert "no more updates" in message
    elif state in HELD:
        assert f"{kind} is not possible now" in message


def test_check_update_changes_nothing() -> None:
    task = held_task(WORKING)
    before = task.SerializeToString()
    for kind in KINDS:
        machine.check_update(task, "a", 1, kind)
        with pytest.raises(FailedPrecondition):
            machine.check_update(task, "b", 1, kind)
    assert task.SerializeToString() == before


def test_stale_attempt_message_names_both_attempts_and_the_agent() -> None:
    with pytest.raises(FailedPrecondition) as err:
        machine.check_update(held_task(WORKING, attempt=3), "a", 2, "result")
    assert str(err.value) == (
        "attempt 2 of task t1 is stale: the task is on attempt 3, WORKING with agent a"
    )
    assert err.value.code.name == "FAILED_PRECONDITION"


def test_update_from_another_agent_is_stale() -> None:
    with pytest.raises(FailedPrecondition) as err:
        machine.check_update(held_task(ASSIGNED, agent="a", attempt=1), "b", 1, "accept")
    assert "attempt 1 of task t1 is stale" in str(err.value)
    assert "with agent a" in str(err.value)


def test_queued_task_takes_no_agent_update() -> None:
    task = task_pb2.Task(id="t1", state=SUBMITTED, attempt=1)  # back in the queue
    with pytest.raises(FailedPrecondition) as err:
        machine.check_update(task, "", 1, "accept")
    assert str(err.value) == "attempt 1 of task t1 is stale: the task is on attempt 1, SUBMITTED"


def test_state_names_and_terminal() -> None:
    assert machine.state_name(INPUT_REQUIRED) == "INPUT_REQUIRED"
    assert machine.state_name(COMPLETED) == "COMPLETED"
    for state in STATES:
        assert machine.is_terminal(task_pb2.Task(state=state)) == (state in TERMINAL)


@pytest.mark.parametrize("state", STATES)
def test_check_state_accepts_defined_states(state: int) -> None:
    machine.check_state(state, "states[0]")


@pytest.mark.parametrize("state", [0, 99, -1])
def test_check_state_refuses_unspecified_and_unknown(state: int) -> None:
    with pytest.raises(InvalidArgument) as err:
        machine.check_state(state, "states[2]")
    assert str(err.value).startswith(f"states[2]: {state} is not one of ")
    assert "TASK_STATE_COMPLETED" in str(err.value)


# A random life of one task ---------------------------------------------------------------------


@dataclass
class Life:
    """One task driven the way the task manager drives it, with check_update deciding."""

    task: task_pb2.Task = field(
        default_factory=lambda: task_pb2.Task(id="t1", state=SUBMITTED, max_attempts=3)
    )
    accepted_attempts: list[int] = field(default_factory=list)
    results: int = 0

    def requeue(self, exhausted: StateT = FAILED) -> None:
        if self.task.attempt >= self.task.max_attempts:
            self.finish(exhausted)
            return
        self.task.state = SUBMITTED
        self.task.assigned_agent_id = ""

    def finish(self, state: StateT) -> None:
        self.task.state = state


def expected_ok(task: task_pb2.Task, agent: str, attempt: int, kind: str) -> bool:
    return (
        task.state in HELD
        and task.assigned_agent_id == agent
        and task.attempt == attempt
        and task.state in EXPECTED[kind][0]
    )


HOLDER = "<holder>"  # the agent the task is assigned to (most updates come from it)
Op = tuple[str, str, str, int]  # (what, update kind, agent, attempt offset)
ops = st.lists(
    st.tuples(
        st.sampled_from(["update"] * 12 + ["assign"] * 3 + ["lease_expired", "cancel"]),
        # Mostly updates that keep the task going, so that later states are reached.
        st.sampled_from(KINDS + ["accept", "progress", "artifact", "input_needed"] * 2),
        st.sampled_from([HOLDER] * 4 + AGENTS),
        st.sampled_from([0, 0, 0, 0, -1, 1, -2]),  # offset from the current attempt
    ),
    min_size=5,
    max_size=50,
)


@settings(max_examples=200)
@given(ops=ops, max_attempts=st.integers(1, 4))
def test_random_updates_respect_the_machine(ops: list[Op], max_attempts: int) -> None:
    life = Life()
    life.task.max_attempts = max_attempts
    task = life.task
    for what, kind, agent, offset in ops:
        before = task.SerializeToString()
        was_terminal = task.state in TERMINAL
        # The hub offers a queued task to an agent (an update for a queued task is mostly
        # preceded by its assignment, so that updates meet held tasks).
        assigning = what == "assign" or (what == "update" and offset == 0)
        if assigning and task.state == SUBMITTED:
            task.attempt += 1
            task.state = ASSIGNED
            task.assigned_agent_id = "a" if agent == HOLDER else agent
        if what == "cancel":
            if task.state not in TERMINAL:
                life.finish(CANCELED)
        elif what == "lease_expired":
            if task.state == ASSIGNED:
                life.requeue()
        elif what == "update":
            attempt = max(task.attempt + offset, 0)
            if agent == HOLDER:
                agent = task.assigned_agent_id or "a"
            ok = expected_ok(task, agent, attempt, kind)
            event(f"{kind} in {machine.state_name(task.state)}: {'ok' if ok else 'refused'}")
            if not ok:
                with pytest.raises(FailedPrecondition) as err:
                    machine.check_update(task, agent, attempt, kind)
                message = str(err.value)
                if attempt != task.attempt or agent != task.assigned_agent_id:
                    # A stale attempt is named in the refusal (also once the task is final).
                    assert message.startswith(f"attempt {attempt} of task t1 is stale"), message
                    assert f"on attempt {task.attempt}" in message
                elif was_terminal:
                    state = machine.state_name(task.state)
                    assert message == f"task t1 is {state}: it takes no more updates"
                assert task.SerializeToString() == before  # a refusal changes nothing
            else:
                target = machine.check_update(task, agent, attempt, kind)
                assert target == EXPECTED[kind][1]
                life.accepted_attempts.append(attempt)
                if kind == "reject":
                    life.requeue(REJECTED)
                elif kind == "result":
                    life.results += 1
                    life.finish(COMPLETED)
                elif target is not None:
                    task.state = target  # type: ignore[assignment]
        # Terminal is final; attempts only grow and stay within max_attempts.
        if was_terminal:
            assert task.SerializeToString() == before
        assert task.attempt <= max_attempts
    assert life.accepted_attempts == sorted(life.accepted_attempts)
    assert life.results <= 1
    if task.state in TERMINAL:
        for kind in KINDS:
            for agent in AGENTS:
                for attempt in range(task.attempt + 2):
                    with pytest.raises(FailedPrecondition):
                        machine.check_update(task, agent, attempt, kind)


@settings(max_examples=200)
@given(
    state=st.sampled_from(sorted(HELD)),
    attempt=st.integers(1, 10),
    sent=st.integers(0, 2**32 - 1),
    kind=st.sampled_from(KINDS),
)
def test_any_other_attempt_is_stale(state: StateT, attempt: int, sent: int, kind: str) -> None:
    task = held_task(state, attempt=attempt)
    if sent == attempt:
        sent += 1
    with pytest.raises(FailedPrecondition) as err:
        machine.check_update(task, "a", sent, kind)
    assert re.match(
        rf"attempt {sent} of task t1 is stale: the task is on attempt {attempt}\b", str(err.value)
    )


@settings(max_examples=100)
@given(
    state=st.sampled_from(sorted(TERMINAL)), kind=st.sampled_from(KINDS), attempt=st.integers(0, 5)
)
def test_terminal_tasks_take_no_update_at_all(state: StateT, kind: str, attempt: int) -> None:
    task = held_task(state, attempt=attempt)  # even from "its" agent with its attempt
    with pytest.raises(FailedPrecondition) as err:
        machine.check_update(task, "a", attempt, kind)
    assert str(err.value) == f"task t1 is {machine.state_name(state)}: it takes no more updates"


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_a_stale_attempt_on_a_final_task_is_reported_as_stale(state: StateT) -> None:
    task = held_task(state, attempt=2)
    with pytest.raises(FailedPrecondition) as err:
        machine.check_update(task, "a", 1, "result")
    name = machine.state_name(state)
    assert str(err.value) == (
        f"attempt 1 of task t1 is stale: the task is on attempt 2, {name} with agent a"
    )
    with pytest.raises(FailedPrecondition) as err:
        machine.check_update(task, "b", 2, "result")
    assert str(err.value).startswith("attempt 2 of task t1 is stale")


# Submission checks -------------------------------------------------------------------------------

LIMITS = Limits()


def test_a_plain_submission_passes() -> None:
    task = task_pb2.Task(
        id="t-1",
        idempotency_key="k:1",
        required_capabilities=["python", "lang:go"],
        preferred_kinds=[agent_pb2.AGENT_KIND_CLAUDE_CODE, agent_pb2.AGENT_KIND_CODEX],
        target_agent_id="bot.1",
        parent_task_id="t-0",
        max_attempts=20,
        labels={"team": "x"},
        input=task_pb2.Payload(content_type="text/plain", data=b"fix it"),
    )
    machine.check_submission(task, LIMITS, 20)
    machine.check_submission(task_pb2.Task(), LIMITS, 20)  # everything is optional


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (task_pb2.Task(id="has space"), "task.id: 'has space' must be 1 to 190 characters"),
        (task_pb2.Task(idempotency_key="k/1"), "task.idempotency_key: 'k/1'"),
        (task_pb2.Task(target_agent_id="x" * 191), "task.target_agent_id: "),
        (task_pb2.Task(parent_task_id="ü"), "task.parent_task_id: 'ü'"),
        (
            task_pb2.Task(required_capabilities=["ok", ""]),
            "task.required_capabilities[1]: '' must be 1 to 100 printable characters",
        ),
        (task_pb2.Task(required_capabilities=["a b"]), "task.required_capabilities[0]: 'a b'"),
        (task_pb2.Task(required_capabilities=["x" * 101]), "task.required_capabilities[0]: "),
        (task_pb2.Task(required_capabilities=["tab\t"]), "task.required_capabilities[0]: "),
        (
            task_pb2.Task(required_capabilities=[f"c{i}" for i in range(65)]),
            "task.required_capabilities has 65 entries, over the limit of 64 "
            "(limits.max_capabilities)",
        ),
        (
            task_pb2.Task(preferred_kinds=[agent_pb2.AGENT_KIND_UNSPECIFIED]),
            "task.preferred_kinds[0]: 0 is not one of ",
        ),
        (
            task_pb2.Task(preferred_kinds=[agent_pb2.AGENT_KIND_CODEX, 99]),  # type: ignore[list-item]
            "task.preferred_kinds[1]: 99 is not one of ",
        ),
        (
            task_pb2.Task(max_attempts=21),
            "task.max_attempts 21 is over the limit of 20 (tasks.max_attempts)",
        ),
        (
            task_pb2.Task(labels={f"k{i}": "v" for i in range(65)}),
            "task.labels has 65 entries, over the limit of 64 (limits.max_labels)",
        ),
        (
            task_pb2.Task(context=task_pb2.ContextPackage(git_ref="r" * 1025)),
            "task.context.git_ref is 1025 characters, over the limit of 1024",
        ),
    ],
)
def test_bad_submissions_are_refused_naming_the_field(task: task_pb2.Task, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        machine.check_submission(task, LIMITS, 20)
    assert str(err.value).startswith(message), str(err.value)


def test_oversized_input_and_context_are_resource_exhausted() -> None:
    limits = Limits(max_payload_bytes=100)
    ok = task_pb2.Task(input=task_pb2.Payload(data=b"x" * 40))
    machine.check_submission(ok, limits, 20)
    big = task_pb2.Task(
        input=task_pb2.Payload(data=b"x" * 60),
        context=task_pb2.ContextPackage(summary="s" * 60),
    )
    with pytest.raises(ResourceExhausted) as err:
        machine.check_submission(big, limits, 20)
    assert "over the limit of 100 (limits.max_payload_bytes)" in str(err.value)


@settings(max_examples=200)
@given(caps=st.lists(st.text(max_size=6), max_size=5))
def test_capabilities_are_checked_one_by_one(caps: list[str]) -> None:
    bad = [i for i, c in enumerate(caps) if not c or " " in c or not c.isprintable()]
    task = task_pb2.Task(required_capabilities=caps)
    if not bad:
        machine.check_submission(task, LIMITS, 20)
        return
    with pytest.raises(InvalidArgument) as err:
        machine.check_submission(task, LIMITS, 20)
    assert str(err.value).startswith(f"task.required_capabilities[{bad[0]}]: ")


# Handoff --------------------------------------------------------------------------------------


def finished_parent() -> task_pb2.Task:
    parent = task_pb2.Task(
        id="parent",
        assigned_agent_id="bot-1",
        status_message="completed",
        state=COMPLETED,
        result=task_pb2.Payload(content_type="text/plain", data=b"done"),
        context=task_pb2.ContextPackage(
            summary="first pass",
            decisions=["use asyncio"],
            files=[task_pb2.FileRef(path="a.py", sha256="aa")],
            git_ref="main",
            metadata={"k": "v"},
        ),
    )
    parent.artifacts.add(id="log", name="log.txt", data=b"...")
    parent.artifacts.add(id="patch", file=task_pb2.FileRef(path="b.py", sha256="bb", diff="+x"))
    return parent


def test_handoff_carries_the_parent_forward() -> None:
    parent = finished_parent()
    before = parent.SerializeToString()
    package = machine.handoff_context(
        parent, agent_pb2.AGENT_KIND_CLAUDE_CODE, "now review", ["keep tests"]
    )
    assert parent.SerializeToString() == before  # the parent is not changed
    assert package.summary == "first pass\n\nnow review"
    assert list(package.decisions) == ["use asyncio", "keep tests"]
    assert [f.path for f in package.files] == ["a.py", "b.py"]
    assert package.git_ref == "main" and dict(package.metadata) == {"k": "v"}
    (prior,) = package.prior_results
    assert (prior.task_id, prior.agent_id) == ("parent", "bot-1")
    assert prior.agent_kind == agent_pb2.AGENT_KIND_CLAUDE_CODE
    assert prior.summary == "completed"
    assert prior.result == parent.result
    assert list(prior.artifacts) == list(parent.artifacts)


def test_handoff_of_a_bare_parent() -> None:
    parent = task_pb2.Task(id="p", state=FAILED)
    package = machine.handoff_context(parent, agent_pb2.AGENT_KIND_UNSPECIFIED, "", [])
    assert package.summary == ""
    assert not package.decisions and not package.files
    (prior,) = package.prior_results
    assert prior.task_id == "p" and not prior.HasField("result")
    only_new = machine.handoff_context(parent, 0, "from scratch", [])
    assert only_new.summary == "from scratch"


@settings(max_examples=100)
@given(
    depth=st.integers(1, 4),
    summaries=st.lists(st.text(alphabet="ab\n", max_size=4).map(str.strip), min_size=4, max_size=4),
)
def test_handoff_chains_accumulate_prior_results(depth: int, summaries: list[str]) -> None:
    """Each generation adds exactly one prior result (its parent's), in order."""
    task = task_pb2.Task(id="t0", assigned_agent_id="a0")
    for gen in range(1, depth + 1):
        package = machine.handoff_context(task, agent_pb2.AGENT_KIND_CUSTOM, summaries[gen - 1], [])
        task = task_pb2.Task(id=f"t{gen}", assigned_agent_id=f"a{gen}", context=package)
    assert [p.task_id for p in task.context.prior_results] == [f"t{i}" for i in range(depth)]
    assert [p.agent_id for p in task.context.prior_results] == [f"a{i}" for i in range(depth)]
    assert task.context.summary == "\n\n".join(s for s in summaries[:depth] if s)
