"""The leader lock: of the hub nodes sharing one Redis, one handles ingress and Redis sessions
(every node hears every PUBLISH, and each message must be acted on once).

`SET key token NX PX ttl` takes the lock; the holder renews it every third of the TTL with a
script that extends it only while it still holds the token, and deletes it the same way on
stop. A holder that cannot renew (Redis away, or the lock gone to another node) gives up
leadership at once, so two nodes never lead together; when the lock expires another node takes
it. The TTL is `engine.node_ttl`, the time after which a silent node counts as dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("agentplex.edges.redis")

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
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
        redis: aioredis.Redis,
        key: str,
        ttl: float,
        owner: str,
        on_change: Callable[[bool], None],
    ) -> None:
        self.redis = redis
        self.key = key
        self.ttl_ms = max(1, int(ttl * 1000))
        self.token = f"{owner}:{secrets.token_hex(6)}"
        self.held = False
        self._on_change = on_change
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def run(self) -> None:
        """Take or renew the lock every third of the TTL, until cancelled."""
        while True:
            await self.attempt()
            await asyncio.sleep(self.ttl_ms / 3000)

    async def attempt(self) -> bool:
        """One try to take (or keep) the lock; returns whether this node holds it now."""
        try:
            if self.held:
                held = bool(await self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))
            else:
                held = bool(await self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))
        except (RedisError, OSError) as err:
            if self.held:
                log.warning("redis edge: cannot renew the leader lock %s: %s", self.key, err)
            held = False
        self._set(held)
        return held

    async def release(self) -> None:
        if self.held:
            with contextlib.suppress(RedisError, OSError):
                await self._release(keys=[self.key], args=[self.token])
            self._set(False)

    def _set(self, held: bool) -> None:
        if held == self.held:
            return
        self.held = held
        log.info("redis edge: %s the leader lock %s", "took" if held else "lost", self.key)
        self._on_change(held)
