"""The leader lock: of the hub nodes sharing one Redis, one handles ingress and Redis sessions
(every node hears every PUBLISH, and each message must be acted on once).

The lock is a key holding the leader's token with a TTL (`engine.node_ttl`, the time after
which a silent node counts as dead). Every third of the TTL each node runs one script: the
holder extends it, anyone takes it when it is free (SET ... PX), others are told no. The
holder counts its lease from before it asked, so a node whose loop stalled past the TTL stops
acting as leader at once, before it learns whether another node took over. A renewal that
fails (Redis away for a moment) is retried on the next round; the lock is lost when the lease
runs out unrenewed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable

from redis.exceptions import RedisError

from agentplex.redisconn import Client

log = logging.getLogger("agentplex.edges.redis")

_CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaderLock:
    def __init__(
        self,
        redis: Client,
        key: str,
        ttl: float,
        owner: str,
        on_change: Callable[[bool], None],
    ) -> None:
        self.key = key
        self.ttl = ttl
        self.token = f"{owner}:{secrets.token_hex(6)}"
        self._on_change = on_change
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)
        self._confirmed = False
        self._expires = 0.0

    @property
    def held(self) -> bool:
        """Whether this node leads: the lock is ours and our lease has not run out."""
        return self._confirmed and time.monotonic() < self._expires

    async def run(self) -> None:
        """Claim the lock every third of the TTL, until cancelled."""
        while True:
            await self.attempt()
            await asyncio.sleep(self.ttl / 3)

    async def attempt(self) -> bool:
        """One claim (take or extend); returns whether this node holds the lock now."""
        asked = time.monotonic()
        try:
            claimed = bool(await self._claim(keys=[self.key], args=[self.token, self._ttl_ms]))
        except (RedisError, OSError) as err:
            if self._confirmed:
                log.warning("redis edge: cannot renew the leader lock %s: %s", self.key, err)
            # The lease from the last claim still runs: only its end loses the lock, so one
            # failed renewal does not end every Redis session this node serves.
            self._set(self.held)
            return self.held
        if claimed:
            self._expires = asked + self.ttl
        self._set(claimed)
        return claimed

    async def release(self) -> None:
        if self._confirmed:
            with contextlib.suppress(RedisError, OSError):
                await self._release(keys=[self.key], args=[self.token])
            self._set(False)

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    def _set(self, confirmed: bool) -> None:
        if confirmed == self._confirmed:
            return
        self._confirmed = confirmed
        log.info("redis edge: %s the leader lock %s", "took" if confirmed else "lost", self.key)
        self._on_change(confirmed)
