"""RegistryService over the hub."""

from __future__ import annotations

import time
from typing import Any

import grpc

from agentplex.core.validation import check_enum
from agentplex.errors import InvalidArgument
from agentplex.hub import Hub
from agentplex.hub.status import hub_status
from agentplex.rpc.principal import principal_of
from agentplex.v1 import agent_pb2, registry_service_pb2 as rs

Context = grpc.aio.ServicerContext[Any, Any]


class RegistryServicer:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.started_ns = time.time_ns()  # with the hub and its counters

    async def RegisterAgent(
        self, request: rs.RegisterAgentRequest, context: Context
    ) -> rs.RegisterAgentResponse:
        if not request.HasField("card"):
            raise InvalidArgument("card is required")
        agent = await self.hub.agents.register(
            principal_of(context), request.card, transport=agent_pb2.TRANSPORT_GRPC
        )
        interval = int(self.hub.settings.session.heartbeat_interval * 1000)
        return rs.RegisterAgentResponse(agent=agent, heartbeat_interval_ms=interval)

    async def Heartbeat(
        self, request: rs.HeartbeatRequest, context: Context
    ) -> rs.HeartbeatResponse:
        check_enum(request.status, agent_pb2.AgentStatus, "status")
        agent = await self.hub.agents.heartbeat(
            principal_of(context), request.agent_id, request.status
        )
        return rs.HeartbeatResponse(agent=agent)

    async def DeregisterAgent(
        self, request: rs.DeregisterAgentRequest, context: Context
    ) -> rs.DeregisterAgentResponse:
        await self.hub.agents.deregister(principal_of(context), request.agent_id)
        return rs.DeregisterAgentResponse()

    async def GetAgent(self, request: rs.GetAgentRequest, context: Context) -> rs.GetAgentResponse:
        agent = await self.hub.agents.get(principal_of(context), request.agent_id)
        return rs.GetAgentResponse(agent=agent)

    async def ListAgents(
        self, request: rs.ListAgentsRequest, context: Context
    ) -> rs.ListAgentsResponse:
        agents = await self.hub.agents.list(principal_of(context), request.filter)
        return rs.ListAgentsResponse(agents=agents)

    async def WatchAgents(self, request: rs.WatchAgentsRequest, context: Context) -> None:
        events = self.hub.agents.watch(
            principal_of(context), request.filter, request.include_current
        )
        async for event in events:
            await context.write(rs.WatchAgentsResponse(event=event))

    async def GetHubStatus(
        self, request: rs.GetHubStatusRequest, context: Context
    ) -> rs.GetHubStatusResponse:
        return await hub_status(self.hub, principal_of(context), self.started_ns)
