"""Tasks in the SDK: a submitter's handle, and the context an agent's handler works in.

Submitting:

    handle = await client.submit("summarise README.md", require=["python"])
    async for event in handle.events():
        print(event.type, event.message)
    payload = await handle.result()        # raises TaskFailed unless COMPLETED

Working (an agent's session):

    async def review(task: TaskContext) -> str:
        await task.progress("reading")
        answer = await task.ask("which branch?")   # the task is INPUT_REQUIRED until answered
        return f"reviewed {answer.data.decode()}"

    session.on_task(review)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import grpc

from agentplex.client.content import as_bytes
from agentplex.client.errors import HubError
from agentplex.core.tasks import state_name
from agentplex.v1 import agent_pb2, session_service_pb2 as ss, task_pb2, task_service_pb2 as ts

if TYPE_CHECKING:
    from agentplex.client.client import Client
    from agentplex.client.session import Session


class TaskOptions(TypedDict, total=False):
    """How a task is routed and run (`Client.submit`, `Session.submit`). `deadline` is in
    seconds from now; `idempotency_key` makes a retried submit return the same task."""

    require: Iterable[str]
    kinds: Iterable[agent_pb2.AgentKind.ValueType]
    agent: str
    priority: int
    deadline: float | None
    max_attempts: int
    idempotency_key: str
    context: task_pb2.ContextPackage | None
    content_type: str
    labels: Mapping[str, str] | None


def new_task(
    input: bytes | str | task_pb2.Payload | None = None, **options: Unpack[TaskOptions]
) -> task_pb2.Task:
    """The task to submit for `input` with `options`."""
    task = task_pb2.Task(
        input=payload(input, options.get("content_type", "")),
        required_capabilities=options.get("require", ()),
        preferred_kinds=options.get("kinds", ()),
        target_agent_id=options.get("agent", ""),
        priority=options.get("priority", 0),
        max_attempts=options.get("max_attempts", 0),
        idempotency_key=options.get("idempotency_key", ""),
        labels=dict(options.get("labels") or {}),
    )
    context = options.get("context")
    if context is not None:
        task.context.CopyFrom(context)
    deadline = options.get("deadline")
    if deadline is not None:
        task.deadline.FromNanoseconds(time.time_ns() + int(deadline * 1e9))
    return task


def payload(
    value: bytes | str | task_pb2.Payload | None, content_type: str = ""
) -> task_pb2.Payload:
    if value is None:
        return task_pb2.Payload()
    if isinstance(value, task_pb2.Payload):
        return value
    data, content_type = as_bytes(value, content_type)
    return task_pb2.Payload(content_type=content_type, data=data)


class TaskFailed(Exception):
    """The task ended without completing: `task.state` and `task.error` say how."""

    def __init__(self, task: task_pb2.Task) -> None:
        detail = task.error.message or task.status_message
        super().__init__(f"task {task.id} {state_name(task.state)}: {detail}")
        self.task = task


class TaskRejected(Exception):
    """Raise from a handler to give the task back: the hub routes it to another agent."""


class TaskHandle:
    def __init__(self, client: Client, task: task_pb2.Task, existing: bool = False) -> None:
        self.client = client
        self.task = task
        self.id = task.id
        self.existing = existing

    async def events(self, *, after: int = 0) -> AsyncIterator[task_pb2.TaskEvent]:
        """The task's events, starting with a snapshot; ends once the task is final. A dropped
        stream is resumed after the last event seen."""
        last = after
        while True:
            call = self.client.tasks.WatchTask(
                ts.WatchTaskRequest(task_id=self.id, after_event=last),
                metadata=self.client.metadata,
            )
            try:
                async for response in call:
                    event = response.event
                    self.task = event.task
                    if event.type == task_pb2.TASK_EVENT_TYPE_SNAPSHOT:
                        # Everything up to its number is in the snapshot; a resume asked for
                        # the events after `after` and gets them next.
                        last = last or event.number
                        yield event
                    elif event.number > last:
                        last = event.number
                        yield event
                return
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE:
                    raise HubError.from_rpc(err) from None
            await asyncio.sleep(0.2)

    async def wait(self) -> task_pb2.Task:
        """The task once it is final, whatever the outcome."""
        async for _ in self.events():
            pass
        return self.task

    async def result(self) -> task_pb2.Payload:
        """The result of a COMPLETED task; TaskFailed for any other ending."""
        task = await self.wait()
        if task.state != task_pb2.TASK_STATE_COMPLETED:
            raise TaskFailed(task)
        return task.result

    async def cancel(self, reason: str = "") -> task_pb2.Task:
        return await self.client.cancel_task(self.id, reason)

    async def provide_input(self, value: bytes | str | task_pb2.Payload) -> task_pb2.Task:
        return await self.client.provide_input(self.id, value)


class TaskContext:
    """What a handler gets for one assignment: the task and ways to report on it."""

    def __init__(self, session: Session, assignment: ss.TaskAssignment) -> None:
        self.session = session
        self.task = assignment.task
        self.attempt = assignment.attempt
        self._input: asyncio.Future[task_pb2.Payload] | None = None

    @property
    def id(self) -> str:
        return self.task.id

    @property
    def input(self) -> task_pb2.Payload:
        return self.task.input

    @property
    def context(self) -> task_pb2.ContextPackage:
        return self.task.context

    async def _update(self, **update: Any) -> None:
        frame = ss.ConnectRequest(
            task_update=ss.TaskUpdate(task_id=self.task.id, attempt=self.attempt, **update)
        )
        await self.session._request(frame)

    async def progress(self, message: str, percent: float = 0.0) -> None:
        await self._update(progress=ss.TaskProgress(message=message, percent=percent))

    async def artifact(self, artifact: task_pb2.Artifact) -> None:
        await self._update(artifact=artifact)

    async def ask(self, prompt: str) -> task_pb2.Payload:
        """Ask for input (the task is INPUT_REQUIRED meanwhile) and wait for it."""
        self._input = asyncio.get_running_loop().create_future()
        await self._update(input_needed=ss.TaskInputNeeded(prompt=prompt))
        return await self._input

    def _give_input(self, value: task_pb2.Payload) -> None:
        if self._input is not None and not self._input.done():
            self._input.set_result(value)
