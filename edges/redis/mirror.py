"""Mirror out: every envelope this node accepts is PUBLISHed on `<prefix>msg:<channel>`.

Fan-out calls `deliver` on the event loop, so it only queues; one task drains the queue into
pipelined PUBLISHes. The queue is bounded (`limits.session_queue`, the batch being sent
included): while Redis is slow or away, a failed batch waits for the next attempt and what does
not fit is dropped and counted, as Redis pub/sub itself would lose it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from agentplex.core.channel_log import Accepted
from agentplex.edges.frames import envelope_json
from agentplex.edges.redis.names import Names
from agentplex.hub import Hub
from agentplex.redisconn import Backoff

log = logging.getLogger("agentplex.edges.redis")

ALL = "*"


class Mirror:
    def __init__(self, hub: Hub, redis: aioredis.Redis, names: Names) -> None:
        self.hub = hub
        self.redis = redis
        self.names = names
        self.limit = hub.limits.session_queue
        self.mirrored = 0
        self.dropped = 0
        self._unreported = 0
        self._in_flight = 0
        self._queue: list[Accepted] = []
        self._ready = asyncio.Event()

    async def start(self) -> None:
        await self.hub.listen(self, ALL)

    async def stop(self) -> None:
        """Stop listening and publish what is still queued, if Redis takes it."""
        await self.hub.unlisten(self, ALL)
        batch, self._queue = self._queue, []
        with contextlib.suppress(RedisError, OSError):
            await self._publish(batch)

    def deliver(self, entry: Accepted) -> None:
        if not entry.local:
            return  # the node that accepted it mirrors it
        if len(self._queue) + self._in_flight >= self.limit:
            self.dropped += 1
            if not self._unreported:
                log.warning(
                    "redis edge: mirror queue full at %d envelopes (limits.session_queue); "
                    "dropping until Redis catches up",
                    self.limit,
                )
            self._unreported += 1
            return
        self._queue.append(entry)
        self._ready.set()

    async def run(self) -> None:
        """Publish queued envelopes until cancelled, retrying a failed batch with backoff."""
        backoff = Backoff()
        while True:
            while not self._queue:
                self._ready.clear()
                await self._ready.wait()
            if self._unreported:
                log.warning("redis edge: mirror dropped %d envelopes", self._unreported)
                self._unreported = 0
            batch, self._queue = self._queue, []
            self._in_flight = len(batch)
            try:
                await self._publish(batch)
            except (RedisError, OSError) as err:
                self._queue[:0] = batch
                self._in_flight = 0
                delay = backoff.delay()
                log.warning(
                    "redis edge: could not mirror %d envelopes (%s); retrying in %.2gs",
                    len(self._queue),
                    err,
                    delay,
                )
                await asyncio.sleep(delay)
            else:
                self._in_flight = 0
                self.mirrored += len(batch)
                backoff.reset()

    async def _publish(self, batch: list[Accepted]) -> None:
        msg = self.names.msg
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry in batch:
                pipe.publish(msg(entry.channel), envelope_json(entry))
            await pipe.execute()
