"""The hub nodes that share this node's engine: this node's lease, the cleanup after a node that
died without leaving, frames for agents whose session another node holds, and the news that the
task queue has work.

With the memory engine this node is the only one and all of this is cheap bookkeeping. With the
Redis engine a node renews its lease every third of `engine.node_ttl`; when one stops (SIGKILL,
a lost machine) the first survivor to notice removes its agents, and the tasks they held go back
to the queue for other agents.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from agentplex.v1 import session_service_pb2 as ss

if TYPE_CHECKING:
    from agentplex.hub.hub import Hub

log = logging.getLogger("agentplex.nodes")


# Node messages: one kind byte, then the body.
FOR_AGENT = b"A"  # the agent's id (ids never hold a newline), a newline, a ConnectResponse
QUEUED = b"Q"  # no body: the task queue has work


def encode_for_agent(agent_id: str, frame: ss.ConnectResponse) -> bytes:
    return FOR_AGENT + agent_id.encode() + b"\n" + frame.SerializeToString()


def decode_for_agent(body: bytes) -> tuple[str, ss.ConnectResponse]:
    agent_id, _, frame = body.partition(b"\n")
    return agent_id.decode(), ss.ConnectResponse.FromString(frame)


class Nodes:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.engine = hub.engine
        self._ttl_ns = int(hub.settings.engine.node_ttl * 1e9)
        self._next_beat = 0

    async def start(self) -> None:
        await self._renew(time.time_ns())

    async def stop(self) -> None:
        """Leave: agents still registered here go (their tasks to other nodes' agents)."""
        await self._bury(self.hub.node, "its hub node stopped")
        await self.engine.forget_node(self.hub.node)

    async def _renew(self, now_ns: int) -> bool:
        """Extend this node's lease; False when it was not there any more."""
        self._next_beat = now_ns + self._ttl_ns // 3
        return await self.engine.beat(self.hub.node, now_ns + self._ttl_ns)

    async def _register_again(self) -> None:
        """The lease had gone (this node stalled past `engine.node_ttl` and was buried, or
        Redis lost its data): the agents whose sessions are here register again and give up
        the tasks that were sent elsewhere meanwhile."""
        sessions = [s for s in self.hub.sessions.all() if s.card is not None and not s.closed]
        log.warning(
            "this node's lease had lapsed (engine.node_ttl) or Redis lost it: "
            "registering its %d agents again",
            len(sessions),
        )
        for session in sessions:
            await self.hub.agents.restore(session)

    async def tick(self, now_ns: int) -> None:
        """Renew this node's lease when due, and clean up after nodes whose lease ran out."""
        if now_ns >= self._next_beat and not await self._renew(now_ns):
            await self._register_again()
        for node in await self.engine.expired_nodes(now_ns):
            if node != self.hub.node and await self.engine.forget_node(node):
                log.warning(
                    "node %s stopped renewing its lease (engine.node_ttl): its agents leave, "
                    "their tasks go to other agents",
                    node,
                )
                await self._bury(node, f"its hub node {node} stopped renewing its lease")

    async def _bury(self, node: str, reason: str) -> None:
        gone = [a.card.id for a in await self.engine.list_agents() if a.node == node]
        if not gone:
            return
        await self.hub.tasks.orphaned(set(gone), reason)
        for agent_id in gone:
            await self.hub.agents.remove(agent_id, reason)

    # Frames for agents on other nodes -------------------------------------------------------

    async def send(self, agent_id: str, frame: ss.ConnectResponse) -> None:
        """Pass a frame to the node holding the agent's session (if another node does)."""
        agent = await self.engine.get_agent(agent_id)
        if agent is not None and agent.node and agent.node != self.hub.node:
            await self.engine.send_to_node(agent.node, encode_for_agent(agent_id, frame))

    async def announce_work(self) -> None:
        """Wake every node's dispatcher: a task entered the queue (its agent may be anywhere)."""
        await self.engine.broadcast(QUEUED)

    def received(self, payload: bytes) -> None:
        kind, body = payload[:1], payload[1:]
        if kind == QUEUED:
            self.hub.tasks.wake()
            return
        try:
            agent_id, frame = decode_for_agent(body) if kind == FOR_AGENT else ("", None)
        except Exception:
            frame = None
        if frame is None:
            log.warning("dropped an undecodable message from another node")
            return
        self.hub.spawn(self.hub.tasks.from_other_node(agent_id, frame))
