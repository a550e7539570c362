"""TaskService over the hub's task manager."""

from __future__ import annotations

from typing import Any

import grpc

from agentplex.errors import InvalidArgument
from agentplex.hub import Hub
from agentplex.rpc.principal import principal_of
from agentplex.v1 import task_service_pb2 as ts

Context = grpc.aio.ServicerContext[Any, Any]


class TaskServicer:
    def __init__(self, hub: Hub) -> None:
        self.tasks = hub.tasks

    async def SubmitTask(
        self, request: ts.SubmitTaskRequest, context: Context
    ) -> ts.SubmitTaskResponse:
        if not request.HasField("task"):
            raise InvalidArgument("task is required")
        task, existing = await self.tasks.submit(principal_of(context), request.task)
        return ts.SubmitTaskResponse(task=task, existing=existing)

    async def GetTask(self, request: ts.GetTaskRequest, context: Context) -> ts.GetTaskResponse:
        return ts.GetTaskResponse(task=await self.tasks.get(principal_of(context), request.task_id))

    async def ListTasks(
        self, request: ts.ListTasksRequest, context: Context
    ) -> ts.ListTasksResponse:
        found = await self.tasks.list(
            principal_of(context),
            list(request.states),
            request.agent_id,
            request.capability,
            request.limit,
        )
        return ts.ListTasksResponse(tasks=found)

    async def CancelTask(
        self, request: ts.CancelTaskRequest, context: Context
    ) -> ts.CancelTaskResponse:
        task = await self.tasks.cancel(principal_of(context), request.task_id, request.reason)
        return ts.CancelTaskResponse(task=task)

    async def ProvideInput(
        self, request: ts.ProvideInputRequest, context: Context
    ) -> ts.ProvideInputResponse:
        task = await self.tasks.provide_input(principal_of(context), request.task_id, request.input)
        return ts.ProvideInputResponse(task=task)

    async def HandoffTask(
        self, request: ts.HandoffTaskRequest, context: Context
    ) -> ts.HandoffTaskResponse:
        task = await self.tasks.handoff(
            principal_of(context),
            request.parent_task_id,
            request.task,
            request.summary,
            list(request.decisions),
        )
        return ts.HandoffTaskResponse(task=task)

    async def WatchTask(self, request: ts.WatchTaskRequest, context: Context) -> None:
        events = self.tasks.watch(principal_of(context), request.task_id, request.after_event)
        async for event in events:
            await context.write(ts.WatchTaskResponse(event=event))
