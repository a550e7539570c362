"""The async client: publish, history, agents, and subscriptions that survive reconnects.

async with Client("127.0.0.1:50051") as hub:
    result = await hub.publish("chat", b"hello")
    async for envelope in hub.subscribe("chat", "jobs.*"):
        print(envelope.channel, envelope.payload)
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any, Unpack

import grpc

from agentplex.client.channel import Tls, bearer_metadata, default_token, open_channel
from agentplex.client.content import as_bytes
from agentplex.client.errors import HubError
from agentplex.client.positions import Positions, requested
from agentplex.client.tasks import TaskHandle, TaskOptions, new_task, payload
from agentplex.v1 import (
    agent_pb2,
    envelope_pb2,
    messaging_service_pb2 as ms,
    messaging_service_pb2_grpc as ms_grpc,
    registry_service_pb2 as rs,
    registry_service_pb2_grpc as rs_grpc,
    task_pb2,
    task_service_pb2 as ts,
    task_service_pb2_grpc as ts_grpc,
)

DEFAULT_HUB = "127.0.0.1:50051"
_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


def default_hub() -> str:
    return os.environ.get("AGENTPLEX_HUB", DEFAULT_HUB)


# Envelope ids: random per process, then counted: unique without an OS random read per envelope.
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(1)


def envelope(
    channel: str,
    payload: bytes | str,
    *,
    content_type: str = "",
    headers: Mapping[str, str] | None = None,
    id: str = "",
    correlation_id: str = "",
    reply_to: str = "",
) -> envelope_pb2.Envelope:
    """Build an envelope. A client-chosen id makes retries safe: the hub stores it once."""
    data, content_type = as_bytes(payload, content_type)
    return envelope_pb2.Envelope(
        id=id or f"{_ID_PREFIX}-{next(_ID_COUNTER)}",
        channel=channel,
        payload=data,
        content_type=content_type,
        headers=dict(headers or {}),
        correlation_id=correlation_id,
        reply_to=reply_to,
    )


class Client:
    """A connection to one hub over gRPC. Cheap to keep; every call may run concurrently."""

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float = 10.0,
        token: str | None = None,
        tls: Tls | None = None,
    ) -> None:
        """`token`: a bearer token for a hub with auth on (default $AGENTPLEX_TOKEN).
        `tls`: connect over TLS (`Tls()` trusts the system's roots)."""
        self.address = address or default_hub()
        self.timeout = timeout
        self.channel = open_channel(self.address, tls)
        self.metadata = bearer_metadata(default_token() if token is None else token)
        self.messaging = ms_grpc.MessagingServiceStub(self.channel)
        self.registry = rs_grpc.RegistryServiceStub(self.channel)
        self.tasks = ts_grpc.TaskServiceStub(self.channel)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close(grace=None)

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until the hub accepts connections (or raise HubError UNAVAILABLE)."""
        try:
            await asyncio.wait_for(self.channel.channel_ready(), timeout or self.timeout)
        except TimeoutError:
            raise HubError(
                grpc.StatusCode.UNAVAILABLE, f"hub at {self.address} is not reachable"
            ) from None

    async def _call(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        try:
            return await method(request, timeout=timeout or self.timeout, metadata=self.metadata)
        except grpc.RpcError as err:
            raise HubError.from_rpc(err) from None

    # Messaging ------------------------------------------------------------------------------

    async def publish(
        self, channel: str, payload: bytes | str, **fields: Any
    ) -> envelope_pb2.PublishResult:
        """Publish one envelope; returns its position (the original one for a duplicate id)."""
        request = ms.PublishRequest(envelope=envelope(channel, payload, **fields))
        response = await self._call(self.messaging.Publish, request)
        return response.result  # type: ignore[no-any-return]

    async def publish_batch(
        self, envelopes: Iterable[envelope_pb2.Envelope]
    ) -> list[envelope_pb2.PublishResult]:
        """Publish several envelopes in one request: all are accepted or none."""
        envelopes = list(envelopes)
        request = ms.PublishBatchRequest(envelopes=envelopes)
        response = await self._call(self.messaging.PublishBatch, request)
        results = list(response.results)
        # Named from the caller's envelopes (the request's copies would each need a wrapper).
        for env, result in zip(envelopes, results, strict=True):
            result.id, result.channel = env.id, env.channel  # left out on the wire
        return results

    async def history(
        self,
        channel: str,
        *,
        since: int | envelope_pb2.StreamPosition | None = None,
        limit: int = 0,
    ) -> ms.HistoryResponse:
        request = ms.HistoryRequest(channel=channel, limit=limit)
        if isinstance(since, int):
            request.since.SetInParent()
            request.since.seq = since
        elif since is not None:
            request.since.CopyFrom(since)
        return await self._call(self.messaging.History, request)  # type: ignore[no-any-return]

    def subscribe(
        self,
        *channels: str,
        since: Mapping[str, int | envelope_pb2.StreamPosition] | None = None,
        reconnect: bool = True,
    ) -> Subscription:
        """Envelopes on `channels` (names or glob patterns), optionally replaying history after
        `since` positions first. With `reconnect`, a dropped stream is reopened from the last
        positions seen, so the iteration has no gap and no duplicate."""
        return Subscription(self, list(channels), since or {}, reconnect)

    # Registry -------------------------------------------------------------------------------

    async def agents(
        self,
        *,
        kinds: Iterable[agent_pb2.AgentKind.ValueType] = (),
        capabilities: Iterable[str] = (),
        statuses: Iterable[agent_pb2.AgentStatus.ValueType] = (),
    ) -> list[agent_pb2.Agent]:
        flt = rs.AgentFilter(kinds=kinds, capabilities=capabilities, statuses=statuses)
        response = await self._call(self.registry.ListAgents, rs.ListAgentsRequest(filter=flt))
        return list(response.agents)

    async def hub_status(self) -> rs.GetHubStatusResponse:
        """Nodes, tasks by state and the answering node's counters (needs task:read)."""
        return await self._call(self.registry.GetHubStatus, rs.GetHubStatusRequest())  # type: ignore[no-any-return]

    async def get_agent(self, agent_id: str) -> agent_pb2.Agent:
        response = await self._call(self.registry.GetAgent, rs.GetAgentRequest(agent_id=agent_id))
        return response.agent  # type: ignore[no-any-return]

    async def register(self, card: agent_pb2.AgentCard) -> agent_pb2.Agent:
        """Register without a session (the agent must then call `heartbeat`); live agents use
        `session(card=...)` instead."""
        request = rs.RegisterAgentRequest(card=card)
        response = await self._call(self.registry.RegisterAgent, request)
        return response.agent  # type: ignore[no-any-return]

    async def heartbeat(self, agent_id: str, status: int = 0) -> agent_pb2.Agent:
        request = rs.HeartbeatRequest(agent_id=agent_id, status=status)  # type: ignore[arg-type]
        response = await self._call(self.registry.Heartbeat, request)
        return response.agent  # type: ignore[no-any-return]

    async def deregister(self, agent_id: str) -> None:
        await self._call(
            self.registry.DeregisterAgent, rs.DeregisterAgentRequest(agent_id=agent_id)
        )

    async def watch_agents(
        self, *, include_current: bool = True, capabilities: Iterable[str] = ()
    ) -> AsyncIterator[agent_pb2.AgentEvent]:
        request = rs.WatchAgentsRequest(
            include_current=include_current,
            filter=rs.AgentFilter(capabilities=capabilities),
        )
        try:
            async for response in self.registry.WatchAgents(request, metadata=self.metadata):
                yield response.event
        except grpc.RpcError as err:
            raise HubError.from_rpc(err) from None

    # Tasks ----------------------------------------------------------------------------------

    async def submit(
        self,
        input: bytes | str | task_pb2.Payload | None = None,
        **options: Unpack[TaskOptions],
    ) -> TaskHandle:
        """Submit a task (see `TaskOptions`: require, kinds, agent, priority, deadline,
        max_attempts, idempotency_key, context, content_type, labels); `handle.existing` is
        True when an idempotency key found an earlier one. A session's `submit` costs less
        when submitting many."""
        request = ts.SubmitTaskRequest(task=new_task(input, **options))
        response = await self._call(self.tasks.SubmitTask, request)
        return TaskHandle(self, response.task, response.existing)

    def task(self, task_id: str) -> TaskHandle:
        """A handle on an existing task (to watch, wait for, cancel or answer it)."""
        return TaskHandle(self, task_pb2.Task(id=task_id))

    async def get_task(self, task_id: str) -> task_pb2.Task:
        response = await self._call(self.tasks.GetTask, ts.GetTaskRequest(task_id=task_id))
        return response.task  # type: ignore[no-any-return]

    async def list_tasks(
        self,
        *,
        states: Iterable[task_pb2.TaskState.ValueType] = (),
        agent: str = "",
        capability: str = "",
        limit: int = 0,
    ) -> list[task_pb2.Task]:
        request = ts.ListTasksRequest(
            states=states, agent_id=agent, capability=capability, limit=limit
        )
        return list((await self._call(self.tasks.ListTasks, request)).tasks)

    async def cancel_task(self, task_id: str, reason: str = "") -> task_pb2.Task:
        request = ts.CancelTaskRequest(task_id=task_id, reason=reason)
        return (await self._call(self.tasks.CancelTask, request)).task  # type: ignore[no-any-return]

    async def provide_input(
        self, task_id: str, value: bytes | str | task_pb2.Payload
    ) -> task_pb2.Task:
        request = ts.ProvideInputRequest(task_id=task_id, input=payload(value))
        return (await self._call(self.tasks.ProvideInput, request)).task  # type: ignore[no-any-return]

    async def handoff(
        self,
        parent_task_id: str,
        input: bytes | str | task_pb2.Payload | None = None,
        *,
        require: Iterable[str] = (),
        kinds: Iterable[agent_pb2.AgentKind.ValueType] = (),
        agent: str = "",
        summary: str = "",
        decisions: Iterable[str] = (),
    ) -> TaskHandle:
        """A child task that carries the parent's context package, result and artifacts."""
        child = task_pb2.Task(
            required_capabilities=require, preferred_kinds=kinds, target_agent_id=agent
        )
        if input is not None:
            child.input.CopyFrom(payload(input))
        request = ts.HandoffTaskRequest(
            parent_task_id=parent_task_id, task=child, summary=summary, decisions=decisions
        )
        response = await self._call(self.tasks.HandoffTask, request)
        return TaskHandle(self, response.task)

    def session(self, card: agent_pb2.AgentCard | None = None, **options: Any) -> Any:
        """A live session (registers `card` as an agent when given); see `Session`."""
        from agentplex.client.session import Session

        return Session(self, card, **options)


class Subscription:
    """An async iterator of envelopes over MessagingService.Subscribe with resume."""

    def __init__(
        self,
        client: Client,
        channels: list[str],
        since: Mapping[str, int | envelope_pb2.StreamPosition],
        reconnect: bool,
    ) -> None:
        self.client = client
        self.channels = channels
        self.positions = Positions()
        for start in requested(since):
            self.positions.set(start.channel, start.position.seq, start.position.epoch)
        self.reconnect = reconnect
        self.states: list[envelope_pb2.SubscriptionState] = []
        self.ready = asyncio.Event()
        self._call: Any = None

    def __aiter__(self) -> AsyncIterator[envelope_pb2.Envelope]:
        return self._iterate()

    def cancel(self) -> None:
        if self._call is not None:
            self._call.cancel()
        self.reconnect = False

    async def _iterate(self) -> AsyncIterator[envelope_pb2.Envelope]:
        delay = 0.05
        while True:
            request = ms.SubscribeRequest(channels=self.channels, since=self.positions.as_list())
            self._call = self.client.messaging.Subscribe(request, metadata=self.client.metadata)
            try:
                async for response in self._call:
                    if response.HasField("states"):
                        self.states = list(response.states.states)
                        self.positions.began(self.states)
                        self.ready.set()
                        delay = 0.05
                        continue
                    advance = self.positions.advance
                    for delivery in response.deliveries.deliveries:
                        env = delivery.envelope
                        if advance(env.channel, env.position):
                            yield env
                return
            except grpc.RpcError as err:
                code = err.code() if hasattr(err, "code") else None
                if code == grpc.StatusCode.CANCELLED and not self.reconnect:
                    return
                if not self.reconnect or code not in _RETRYABLE:
                    raise HubError.from_rpc(err) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
