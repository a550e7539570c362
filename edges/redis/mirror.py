"""Mirror out: every envelope this node accepts is PUBLISHed on `<prefix>msg:<channel>`.

Fan-out calls `deliver` on the event loop; while the connection is up, the PUBLISH is written
there and then (see `redisdirect.py`), and one task reads the replies. What is written and not yet
answered is kept: should the connection fail, it is sent again on the next one (a subscriber may
see a message twice then, never miss one Redis took). While Redis is away envelopes queue, up to
`limits.session_queue` (the unanswered included); what does not fit is dropped and counted, as
Redis pub/sub itself would lose it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from agentplex.core.channel_log import Accepted
from agentplex.edges.frames import envelope_json
from agentplex.edges.redis.names import Names
from agentplex.hub import Hub
from agentplex.redisconn import Backoff
from agentplex.redisdirect import DirectConnection, command

log = logging.getLogger("agentplex.edges.redis")

ALL = "*"


class Mirror:
    def __init__(self, hub: Hub, redis: aioredis.Redis, names: Names) -> None:
        self.hub = hub
        self.connection = DirectConnection(redis, "mirror's")
        self.names = names
        self.limit = hub.limits.session_queue
        self.mirrored = 0
        self.dropped = 0
        self._unreported = 0
        self._queue: list[Accepted] = []  # not written yet
        self._unanswered: deque[Accepted] = deque()  # written, reply not read yet
        self._ready = asyncio.Event()

    async def start(self) -> None:
        await self.hub.listen(self, ALL)

    async def stop(self) -> None:
        """Stop listening and publish what is still queued or unanswered, if Redis takes it."""
        await self.hub.unlisten(self, ALL)
        if self._queue or self._unanswered:
            with contextlib.suppress(RedisError, OSError):
                if not self.connection.connected:
                    self._requeue()
                    await self.connection.connect()
                self._write()
                await self._read_replies()
        await self.connection.close()

    def deliver(self, entry: Accepted) -> None:
        if not entry.local:
            return  # the node that accepted it mirrors it
        if len(self._queue) + len(self._unanswered) >= self.limit:
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
        self._write()
        self._ready.set()

    def _write(self) -> None:
        """Write what is queued, if the connection is open; it stays queued otherwise."""
        batch = self._queue
        if not batch or not self.connection.connected:
            return
        msg = self.names.msg
        commands = [
            command(b"PUBLISH", msg(e.channel).encode(), envelope_json(e).encode()) for e in batch
        ]
        if self.connection.write(b"".join(commands)):
            self._unanswered.extend(batch)
            self._queue = []

    async def _read_replies(self) -> None:
        unanswered = self._unanswered
        while unanswered:
            await self.connection.read_reply()
            unanswered.popleft()
            self.mirrored += 1

    def _requeue(self) -> None:
        """Queue what the failed connection left unanswered, ahead of what came since."""
        self._queue[:0] = self._unanswered
        self._unanswered.clear()

    async def run(self) -> None:
        """Keep the connection up and read replies until cancelled; reconnect with backoff."""
        backoff = Backoff()
        while True:
            while not self._queue and not self._unanswered:
                self._ready.clear()
                await self._ready.wait()
            if self._unreported:
                log.warning("redis edge: mirror dropped %d envelopes", self._unreported)
                self._unreported = 0
            try:
                await self.connection.connect()
                self._write()
                await self._read_replies()
            except (RedisError, OSError) as err:
                await self.connection.close()
                self._requeue()
                delay = backoff.delay()
                log.warning(
                    "redis edge: could not mirror %d envelopes (%s); retrying in %.2gs",
                    len(self._queue),
                    err,
                    delay,
                )
                await asyncio.sleep(delay)
            else:
                backoff.reset()
