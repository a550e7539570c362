"""Tasks over real gRPC: routing, leases and retries, cancel, input, handoff, idempotency,
deadlines and the dead-letter channel. Agents here are SDK sessions in this process; see
test_task_agents.py for real `agentplex agent` processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest

from agentplex.client import Client, HubError, Session, TaskContext, TaskFailed, TaskRejected
from agentplex.config import Settings
from agentplex.node import HubNode
from agentplex.v1 import (
    agent_pb2,
    session_service_pb2 as ss,
    task_pb2,
    task_service_pb2 as ts,
)
from tests.conftest import ENGINES, engine_settings
from tests.integration.test_sessions import Raw
from tests.support.streams import until

T = task_pb2
Handler = Callable[[TaskContext], Awaitable[bytes | str | None]]


def card(
    agent_id: str,
    caps: tuple[str, ...] = (),
    max_tasks: int = 1,
    kind: int = agent_pb2.AGENT_KIND_CUSTOM,
) -> agent_pb2.AgentCard:
    return agent_pb2.AgentCard(
        id=agent_id, capabilities=caps, max_concurrent_tasks=max_tasks, kind=kind
    )  # type: ignore[arg-type]


def stuck_handler(started: asyncio.Event) -> Handler:
    """A handler that signals it started, then works until it is canceled."""

    async def stuck(task: TaskContext) -> str:
        started.set()
        await asyncio.sleep(60)
        return "never"

    return stuck


async def echo(task: TaskContext) -> str:
    return f"{task.id} done by {task.session.agent_id}"


@pytest.fixture
async def agents(client: Client) -> AsyncIterator[Callable[..., Awaitable[Session]]]:
    opened: list[Session] = []

    async def start(
        agent_id: str, caps: tuple[str, ...] = (), handler: Handler = echo, **kw: int
    ) -> Session:
        session = client.session(card(agent_id, caps, **kw))
        await session.connect()
        session.on_task(handler)
        opened.append(session)
        return session

    yield start
    for session in opened:
        await session.close()


async def test_capability_routing(
    client: Client, agents: Callable[..., Awaitable[Session]]
) -> None:
    await agents("py", ("python",))
    await agents("go", ("go", "review"))
    await agents("both", ("python", "go"))
    py = await (await client.submit("a", require=["python"])).wait()
    review = await (await client.submit("b", require=["go", "review"])).wait()
    both = await (await client.submit("c", require=["python", "go"])).wait()
    assert py.assigned_agent_id in {"py", "both"}
    assert review.assigned_agent_id == "go"
    assert both.assigned_agent_id == "both"
    assert review.result.data == f"{review.id} done by go".encode()
    assert all(t.state == T.TASK_STATE_COMPLETED for t in (py, review, both))


async def test_least_loaded_spreading_and_capacity(
    client: Client, agents: Callable[..., Awaitable[Session]]
) -> None:
    release = asyncio.Event()

    async def slow(task: TaskContext) -> str:
        await release.wait()
        return "ok"

    for name in ("a", "b", "c"):
        await agents(name, ("work",), slow, max_tasks=2)
    handles = [await client.submit(str(i), require=["work"]) for i in range(7)]

    async def placed() -> bool:
        tasks = await client.list_tasks(states=[T.TASK_STATE_WORKING])
        return len(tasks) == 6

    await until(placed)
    working = await client.list_tasks(states=[T.TASK_STATE_WORKING])
    per_agent = sorted(t.assigned_agent_id for t in working)
    assert per_agent == ["a", "a", "b", "b", "c", "c"]
    # The seventh waits for a free slot, then runs.
    assert (await client.get_task(handles[6].id)).state == T.TASK_STATE_SUBMITTED
    for name in ("a", "b", "c"):
        agent = await client.get_agent(name)
        assert agent.active_tasks == 2
    release.set()
    results = [await h.wait() for h in handles]
    assert all(t.state == T.TASK_STATE_COMPLETED for t in results)
    assert (await client.get_agent("a")).active_tasks == 0


async def test_waiting_tasks_go_out_in_priority_order_when_an_agent_joins(
    client: Client, agents: Callable[..., Awaitable[Session]]
) -> None:
    order: list[bytes] = []

    async def record(task: TaskContext) -> str:
        order.append(task.input.data)
        return "ok"

    low = await client.submit("low", require=["late"], priority=1)
    high = await client.submit("high", require=["late"], priority=5)
    mid = await client.submit("mid", require=["late"], priority=3)
    await asyncio.sleep(0.1)
    assert (await client.get_task(low.id)).state == T.TASK_STATE_SUBMITTED
    await agents("late-joiner", ("late",), record)
    for handle in (low, high, mid):
        await handle.result()
    assert order == [b"high", b"mid", b"low"]


async def test_preferred_kind_and_named_target(
    client: Client, agents: Callable[..., Awaitable[Session]]
) -> None:
    await agents("custom-1", ("x",))
    await agents("claude-1", ("x",), kind=agent_pb2.AGENT_KIND_CLAUDE_CODE)
    preferred = await (
        await client.submit("p", require=["x"], kinds=[agent_pb2.AGENT_KIND_CLAUDE_CODE])
    ).wait()
    assert preferred.assigned_agent_id == "claude-1"
    targeted = await (await client.submit("t", agent="custom-1")).wait()
    assert targeted.assigned_agent_id == "custom-1"
    with pytest.raises(HubError) as missing:
        await client.submit("t", agent="nobody")
    assert missing.value.code == grpc.StatusCode.NOT_FOUND


async def test_draining_and_waiting_input_agents_get_no_new_work(
    client: Client, agents: Callable[..., Awaitable[Session]]
) -> None:
    draining = await agents("drain", ("d",))
    await draining.set_status(agent_pb2.AGENT_STATUS_DRAINING)
    waiting = await agents("wait", ("d",))
    await waiting.set_status(agent_pb2.AGENT_STATUS_WAITING_INPUT)
    handle = await client.submit("x", require=["d"])
    await asyncio.sleep(0.3)
    assert (await client.get_task(handle.id)).state == T.TASK_STATE_SUBMITTED
    await waiting.set_status(agent_pb2.AGENT_STATUS_ONLINE)
    assert (await handle.wait()).assigned_agent_id == "wait"


async def test_input_required_round_trip(
    client: Client, agents: Callable[..., Awaitable[Session]]
) -> None:
    async def ask(task: TaskContext) -> str:
        await task.progress("thinking", 10)
        answer = await task.ask("which branch?")
        return f"reviewed {answer.data.decode()}"

    await agents("asker", ("ask",), ask)
    handle = await client.submit("review", require=["ask"])
    seen: list[tuple[int, int, str]] = []
    async for event in handle.events():
        seen.append((event.type, event.task.state, event.message))
        if event.task.state == T.TASK_STATE_INPUT_REQUIRED:
            assert event.task.input_prompt == "which branch?"
            await handle.provide_input("main")
    assert (await handle.result()).data == b"reviewed main"
    # The watch may begin before or after the agent asks: the snapshot then shows it.
    states = [state for _, state, _ in seen]
    steps = [state for i, state in enumerate(states) if i == 0 or states[i - 1] != state]
    assert steps[-3:] == [
        T.TASK_STATE_INPUT_REQUIRED,
        T.TASK_STATE_WORKING,
        T.TASK_STATE_COMPLETED,
    ]
    with pytest.raises(HubError) as late:
        await client.provide_input(handle.id, "too late")
    assert late.value.code == grpc.StatusCode.FAILED_PRECONDITION


async def test_cancel_reaches_the_working_agent(
    client: Client, agents: Callable[..., Awaitable[Session]]
) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever(task: TaskContext) -> str:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    await agents("worker", ("long",), forever)
    handle = await client.submit("x", require=["long"])
    await asyncio.wait_for(started.wait(), 5)
    canceled = await handle.cancel("changed my mind")
    assert canceled.state == T.TASK_STATE_CANCELED
    await asyncio.wait_for(cancelled.wait(), 5)
    with pytest.raises(TaskFailed) as failed:
        await handle.result()
    assert failed.value.task.state == T.TASK_STATE_CANCELED
    assert (await client.get_agent("worker")).active_tasks == 0
    with pytest.raises(HubError) as again:
        await handle.cancel()
    assert again.value.code == grpc.StatusCode.FAILED_PRECONDITION


async def test_failure_reported_by_the_agent(
    client: Client, agents: Callable[..., Awaitable[Session]]
) -> None:
    async def broken(task: TaskContext) -> str:
        raise RuntimeError("disk full")

    await agents("broken", ("b",), broken)
    with pytest.raises(TaskFailed, match="disk full") as failed:
        await (await client.submit("x", require=["b"])).result()
    assert failed.value.task.state == T.TASK_STATE_FAILED


async def test_rejected_task_goes_to_a_different_agent(
    client: Client, agents: Callable[..., Awaitable[Session]]
) -> None:
    async def picky(task: TaskContext) -> str:
        raise TaskRejected("not my kind of work")

    await agents("picky", ("r",), picky)
    handle = await client.submit("x", require=["r"])
    await until(lambda: _attempt_at_least(client, handle.id, 1))
    await agents("willing", ("r",))
    done = await handle.wait()
    assert done.state == T.TASK_STATE_COMPLETED and done.assigned_agent_id == "willing"
    assert done.attempt == 2


async def _attempt_at_least(client: Client, task_id: str, attempt: int) -> bool:
    task = await client.get_task(task_id)
    return task.attempt >= attempt and task.state == T.TASK_STATE_SUBMITTED


async def test_all_attempts_rejected_ends_rejected_on_the_dead_letter_channel(
    client: Client, agents: Callable[..., Awaitable[Session]]
) -> None:
    async def picky(task: TaskContext) -> str:
        raise TaskRejected("no")

    dlq = client.subscribe("_dlq.tasks")
    got = asyncio.create_task(anext(aiter(dlq)))
    await asyncio.wait_for(dlq.ready.wait(), 5)
    for i in range(2):
        await agents(f"picky-{i}", ("z",), picky)
    handle = await client.submit("x", require=["z"], max_attempts=2)
    final = await handle.wait()
    assert final.state == T.TASK_STATE_REJECTED and final.attempt == 2
    dead = task_pb2.Task.FromString((await asyncio.wait_for(got, 5)).payload)
    assert dead.id == handle.id and dead.state == T.TASK_STATE_REJECTED


async def test_assignment_not_accepted_in_time_goes_elsewhere(
    client: Client, node: HubNode, agents: Callable[..., Awaitable[Session]]
) -> None:
    raw = Raw(client)
    beating = raw.keep_alive()
    await raw.send(hello=ss.Hello(card=card("mute", ("m",))))
    await raw.read_kind("welcome")
    handle = await client.submit("x", require=["m"])
    offered = (await raw.read_kind("task_assignment")).task_assignment
    assert offered.attempt == 1 and offered.task.id == handle.id
    await agents("responsive", ("m",))
    # fast_settings has no short ack deadline for tasks: expire it by ticking in the future.
    await node.hub.tasks.tick(offered.ack_deadline.ToNanoseconds() + 1)
    cancel = (await raw.read_kind("task_cancel")).task_cancel
    assert (cancel.task_id, cancel.attempt) == (handle.id, 1)
    done = await handle.wait()
    assert done.assigned_agent_id == "responsive" and done.attempt == 2
    # The mute agent wakes up too late: its attempt is stale.
    await raw.send(
        ref="late",
        task_update=ss.TaskUpdate(task_id=handle.id, attempt=1, result=T.Payload(data=b"late")),
    )
    error = await raw.read_kind("error")
    assert error.ref == "late" and error.error.code == ss.ERROR_CODE_FAILED_PRECONDITION
    assert "attempt 1" in error.error.message and "stale" in error.error.message
    assert (await client.get_task(handle.id)).result.data != b"late"
    beating.cancel()
    raw.call.cancel()


async def test_agent_that_leaves_loses_its_tasks_to_another(
    client: Client, agents: Callable[..., Awaitable[Session]]
) -> None:
    started = asyncio.Event()
    stuck = stuck_handler(started)

    first = await agents("first", ("k",), stuck)
    handle = await client.submit("x", require=["k"])
    await asyncio.wait_for(started.wait(), 5)
    first.reconnect = False
    first.drop()  # gone without goodbye: OFFLINE, then removed after the grace period (1.5 s)
    await agents("second", ("k",))
    done = await handle.wait()
    assert done.state == T.TASK_STATE_COMPLETED and done.assigned_agent_id == "second"
    assert done.attempt == 2


async def test_idempotent_submit(client: Client, agents: Callable[..., Awaitable[Session]]) -> None:
    one = await client.submit("x", require=["nobody-has-this"], idempotency_key="job-7")
    two = await client.submit("y", require=["nobody-has-this"], idempotency_key="job-7")
    assert two.existing and not one.existing and one.id == two.id
    assert two.task.input.data == b"x"
    assert len(await client.list_tasks()) == 1


async def test_submit_over_a_session(
    client: Client, agents: Callable[..., Awaitable[Session]]
) -> None:
    """A session submits with a frame; the handle works as a unary submit's does; a key made up
    per submit keeps a frame sent again from making a second task; a refusal names the field
    and leaves the session working."""
    await agents("worker", ("text",))
    async with client.session() as submitter:
        handle = await submitter.submit("hello", require=["text"], labels={"from": "session"})
        assert (await handle.result()).data == f"{handle.id} done by worker".encode()
        assert handle.task.labels["from"] == "session" and handle.task.idempotency_key
        again = await submitter.submit("x", require=["nobody"], idempotency_key="job-9")
        same = await submitter.submit("y", require=["nobody"], idempotency_key="job-9")
        assert same.id == again.id and same.task.input.data == b"x"
        with pytest.raises(HubError) as refused:
            await submitter.submit("z", require=["has space"])
        assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "required_capabilities[0]" in str(refused.value)
        assert (await submitter.submit("still", require=["text"])).id
    assert len(await client.list_tasks()) == 3


async def test_deadline_expiry(client: Client) -> None:
    handle = await client.submit("x", require=["nobody-has-this"], deadline=0.3)
    final = await handle.wait()
    assert final.state == T.TASK_STATE_FAILED and final.error.code == "DEADLINE_EXCEEDED"
    with pytest.raises(HubError) as past:
        await client.submit("x", deadline=-1)
    assert past.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_handoff_carries_context_results_and_artifacts(
    client: Client, agents: Callable[..., Awaitable[Session]]
) -> None:
    received: list[task_pb2.ContextPackage] = []

    async def planner(task: TaskContext) -> str:
        await task.artifact(
            task_pb2.Artifact(
                id="a1",
                name="plan.md",
                data=b"step 1",
                file=task_pb2.FileRef(path="plan.md", sha256="ab"),
            )
        )
        return "plan ready"

    async def builder(task: TaskContext) -> str:
        received.append(task.context)
        return "built"

    await agents("planner", ("plan",), planner, kind=agent_pb2.AGENT_KIND_CLAUDE_CODE)
    await agents("builder", ("build",), builder)
    context = task_pb2.ContextPackage(summary="Add a cache", git_ref="main", decisions=["use LRU"])
    parent = await client.submit("design it", require=["plan"], context=context)
    await parent.result()
    child = await client.handoff(
        parent.id,
        "build it",
        require=["build"],
        summary="Plan is done",
        decisions=["start with tests"],
    )
    assert (await child.result()).data == b"built"
    [package] = received
    assert package.summary == "Add a cache\n\nPlan is done"
    assert list(package.decisions) == ["use LRU", "start with tests"]
    assert package.git_ref == "main"
    [prior] = package.prior_results
    assert (prior.task_id, prior.agent_id, prior.agent_kind) == (
        parent.id,
        "planner",
        agent_pb2.AGENT_KIND_CLAUDE_CODE,
    )
    assert prior.result.data == b"plan ready"
    assert [a.name for a in prior.artifacts] == ["plan.md"]
    assert [f.path for f in package.files] == ["plan.md"]
    assert (await client.get_task(child.id)).parent_task_id == parent.id


async def test_watch_resumes_after_an_event_number(
    client: Client, agents: Callable[..., Awaitable[Session]]
) -> None:
    async def chatty(task: TaskContext) -> str:
        for i in range(3):
            await task.progress(f"step {i}")
        return "ok"

    await agents("chatty", ("c",), chatty)
    handle = await client.submit("x", require=["c"])
    events = [e async for e in handle.events(after=1)]  # from the start, however fast the agent
    numbers = [e.number for e in events[1:]]
    assert len(numbers) >= 5  # assigned, working, three progress events, completed
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    resumed = [e async for e in client.task(handle.id).events(after=numbers[1])]
    assert resumed[0].type == T.TASK_EVENT_TYPE_SNAPSHOT
    assert [e.number for e in resumed[1:]] == [n for n in numbers if n > numbers[1]]


async def test_task_events_are_published_on_the_system_channel(
    client: Client, agents: Callable[..., Awaitable[Session]]
) -> None:
    await agents("sys", ("s",))
    handle = await client.submit("x", require=["s"])
    await handle.result()
    page = await client.history("_sys.tasks")
    events = [
        task_pb2.TaskEvent.FromString(e.payload)
        for e in page.envelopes
        if e.headers["task"] == handle.id
    ]
    states = [e.task.state for e in events if e.type == T.TASK_EVENT_TYPE_STATE_CHANGED]
    assert states == [
        T.TASK_STATE_SUBMITTED,
        T.TASK_STATE_ASSIGNED,
        T.TASK_STATE_WORKING,
        T.TASK_STATE_COMPLETED,
    ]
    agents_page = await client.history("_sys.agents")
    assert any(
        agent_pb2.AgentEvent.FromString(e.payload).agent.card.id == "sys"
        for e in agents_page.envelopes
    )


@pytest.mark.parametrize(
    ("request_", "code", "named"),
    [
        (ts.SubmitTaskRequest(), grpc.StatusCode.INVALID_ARGUMENT, "task is required"),
        (
            ts.SubmitTaskRequest(task=T.Task(required_capabilities=["a b"])),
            grpc.StatusCode.INVALID_ARGUMENT,
            "task.required_capabilities[0]",
        ),
        (
            ts.SubmitTaskRequest(task=T.Task(preferred_kinds=[99])),
            grpc.StatusCode.INVALID_ARGUMENT,
            "task.preferred_kinds[0]",
        ),  # type: ignore[list-item]
        (
            ts.SubmitTaskRequest(task=T.Task(max_attempts=1000)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "tasks.max_attempts",
        ),
        (
            ts.SubmitTaskRequest(task=T.Task(idempotency_key="has space")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "task.idempotency_key",
        ),
        (
            ts.SubmitTaskRequest(task=T.Task(input=T.Payload(data=b"x" * (1024 * 1024 + 1)))),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "limits.max_payload_bytes",
        ),
    ],
)
async def test_bad_submissions(
    client: Client, request_: ts.SubmitTaskRequest, code: grpc.StatusCode, named: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.tasks.SubmitTask(request_)
    assert refused.value.code() == code
    assert named in (refused.value.details() or "")
    assert await client.list_tasks() == []


@pytest.mark.parametrize(
    ("call", "code", "named"),
    [
        ("get-missing", grpc.StatusCode.NOT_FOUND, "no task"),
        ("get-empty", grpc.StatusCode.INVALID_ARGUMENT, "task_id is required"),
        ("list-bad-state", grpc.StatusCode.INVALID_ARGUMENT, "states[0]"),
        ("cancel-missing", grpc.StatusCode.NOT_FOUND, "no task"),
        ("input-not-waiting", grpc.StatusCode.FAILED_PRECONDITION, "not INPUT_REQUIRED"),
        ("handoff-missing", grpc.StatusCode.NOT_FOUND, "no task"),
        ("watch-missing", grpc.StatusCode.NOT_FOUND, "no task"),
    ],
)
async def test_bad_task_requests(
    client: Client, call: str, code: grpc.StatusCode, named: str
) -> None:
    queued = await client.submit("x", require=["none"])
    stub = client.tasks
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        if call == "get-missing":
            await stub.GetTask(ts.GetTaskRequest(task_id="nope"))
        elif call == "get-empty":
            await stub.GetTask(ts.GetTaskRequest())
        elif call == "list-bad-state":
            await stub.ListTasks(ts.ListTasksRequest(states=[42]))  # type: ignore[list-item]
        elif call == "cancel-missing":
            await stub.CancelTask(ts.CancelTaskRequest(task_id="nope"))
        elif call == "input-not-waiting":
            await stub.ProvideInput(ts.ProvideInputRequest(task_id=queued.id))
        elif call == "handoff-missing":
            await stub.HandoffTask(ts.HandoffTaskRequest(parent_task_id="nope"))
        else:
            async for _ in stub.WatchTask(ts.WatchTaskRequest(task_id="nope")):
                pass
    assert refused.value.code() == code
    assert named in (refused.value.details() or "")
    assert (await client.get_task(queued.id)).state == T.TASK_STATE_SUBMITTED


async def test_task_updates_need_an_agent_session(client: Client) -> None:
    raw = Raw(client)
    await raw.send(hello=ss.Hello())
    await raw.read_kind("welcome")
    await raw.send(ref="u", task_update=ss.TaskUpdate(task_id="x", accept=ss.TaskAccept()))
    error = await raw.read_kind("error")
    assert (
        error.error.code == ss.ERROR_CODE_FAILED_PRECONDITION and "no agent" in error.error.message
    )
    raw.call.cancel()


@pytest.fixture(params=ENGINES)
def settings(request: pytest.FixtureRequest) -> Settings:
    return engine_settings(request, tasks={"ack_deadline": 5})


async def test_finished_tasks_are_forgotten_after_the_retention(
    client: Client, node: HubNode, agents: Callable[..., Awaitable[Session]]
) -> None:
    await agents("quick", ("q",))
    handle = await client.submit("x", require=["q"])
    await handle.result()
    retention = node.settings.tasks.retention
    await node.hub.tasks.tick(time.time_ns() + int(retention * 1e9) + 10**9)
    with pytest.raises(HubError) as gone:
        await client.get_task(handle.id)
    assert gone.value.code == grpc.StatusCode.NOT_FOUND


async def test_agent_registered_again_loses_what_its_old_session_held(
    client: Client, agents: Callable[..., Awaitable[Session]]
) -> None:
    started = asyncio.Event()
    stuck = stuck_handler(started)

    old = await agents("phoenix", ("p",), stuck)
    handle = await client.submit("x", require=["p"])
    await asyncio.wait_for(started.wait(), 5)
    old.reconnect = False
    old.drop()
    await until(lambda: _offline(client, "phoenix"))
    await agents("phoenix", ("p",))  # the same id, a new process: takes the registration over
    done = await handle.wait()
    assert done.state == T.TASK_STATE_COMPLETED and done.attempt == 2


async def _offline(client: Client, agent_id: str) -> bool:
    return (await client.get_agent(agent_id)).status == agent_pb2.AGENT_STATUS_OFFLINE


async def test_events_stay_small_for_large_tasks(
    client: Client, agents: Callable[..., Awaitable[Session]]
) -> None:
    big = b"x" * 500_000
    context = task_pb2.ContextPackage(summary="y" * 100_000)

    async def produce(task: TaskContext) -> str:
        assert task.input.data == big and task.context.summary == context.summary  # all there
        await task.artifact(task_pb2.Artifact(id="a", name="out.bin", data=b"z" * 200_000))
        return "done"

    await agents("heavy", ("h",), produce)
    handle = await client.submit(big, require=["h"], context=context)
    events = [e async for e in handle.events(after=1)]
    snapshot, changes = events[0], events[1:]
    assert changes and all(e.ByteSize() < 10_000 for e in changes)
    assert changes[-1].task.result.data == b"done"  # results stay in
    assert [a.name for a in changes[-1].task.artifacts] == ["out.bin"]
    page = await client.history("_sys.tasks")
    assert all(len(e.payload) < 10_000 for e in page.envelopes)
    full = await client.get_task(handle.id)
    assert full.input.data == big and full.artifacts[0].data == b"z" * 200_000
    assert snapshot.task.input.data == big  # a SNAPSHOT carries the whole task
