"""The embedded engine: everything in this process, nothing to install or run."""

from __future__ import annotations

import time
from collections.abc import Sequence

from agentplex.core.channel_log import Accepted, ChannelLog, Replay, Retention, new_epoch
from agentplex.engine.base import Engine, Outcome, PublicationHandler
from agentplex.v1 import agent_pb2, envelope_pb2


def _drop(_: Sequence[Accepted]) -> None:
    return None


class MemoryEngine(Engine):
    """Channel logs live as long as the process. One epoch per process: a restart loses history,
    so every channel's epoch changes and old positions are reported unrecoverable."""

    name = "memory"

    def __init__(self, retention: Retention | None = None) -> None:
        self.retention = retention or Retention()
        self._logs: dict[str, ChannelLog] = {}
        self._agents: dict[str, agent_pb2.Agent] = {}
        self._handler: PublicationHandler = _drop
        self.epoch = new_epoch()

    async def start(self, on_publications: PublicationHandler) -> None:
        self._handler = on_publications

    async def close(self) -> None:
        self._handler = _drop

    def _log(self, channel: str) -> ChannelLog:
        log = self._logs.get(channel)
        if log is None:
            log = self._logs[channel] = ChannelLog(channel, self.retention, self.epoch)
        return log

    async def publish(
        self, envelopes: Sequence[envelope_pb2.Envelope], now_ns: int
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        accepted: list[Accepted] = []
        for env in envelopes:
            log = self._log(env.channel)
            dup = log.duplicate_of(env.id, now_ns)
            if dup is not None:
                outcomes.append(Outcome(dup[0], log.epoch, dup[1], True))
                continue
            entry = log.append(env, now_ns)
            accepted.append(entry)
            outcomes.append(Outcome(entry.seq, log.epoch, entry.sha256, False))
        if accepted:
            self._handler(accepted)
        return outcomes

    async def history(self, channel: str, seq: int | None, epoch: str | None, limit: int) -> Replay:
        log = self._logs.get(channel)
        if log is None:  # never published: answer without creating state for the name
            known = seq is None or (seq == 0 and epoch in (self.epoch, None, ""))
            return Replay([], 0, self.epoch, known)
        log.trim(time.time_ns())
        return log.since(seq, epoch, limit)

    async def put_agent(self, agent: agent_pb2.Agent) -> None:
        self._agents[agent.card.id] = agent

    async def get_agent(self, agent_id: str) -> agent_pb2.Agent | None:
        return self._agents.get(agent_id)

    async def delete_agent(self, agent_id: str) -> agent_pb2.Agent | None:
        return self._agents.pop(agent_id, None)

    async def list_agents(self) -> list[agent_pb2.Agent]:
        return list(self._agents.values())
