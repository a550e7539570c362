"""Draining a node that is about to stop: the agents whose sessions it holds go DRAINING (no new
work, and everyone watching the registry sees why) and every connected session is told with a
`Drain` frame, while the connections are still open to carry it. `Hub.stop` then puts their
tasks back in the queue and ends the sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentplex.v1 import agent_pb2, session_service_pb2 as ss

if TYPE_CHECKING:
    from agentplex.hub.hub import Hub

REASON = "its hub node is shutting down"


async def drain(hub: Hub) -> None:
    frame = ss.ConnectResponse(drain=ss.Drain(node=hub.node, reason=REASON))
    for session in hub.sessions.all():
        if session.closed:
            continue
        session.send(frame)
        if not session.agent_id:
            continue
        agent = await hub.engine.get_agent(session.agent_id)
        if agent is not None and agent.node == hub.node:
            await hub.agents.set_status(agent, agent_pb2.AGENT_STATUS_DRAINING, REASON)
