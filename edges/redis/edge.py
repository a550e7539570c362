"""The Redis edge: mirror out, ingress, sessions over Redis and the leader lock, started and
stopped together, over one pooled client and one pub/sub connection.

Every node mirrors what it accepts. Every node also PSUBSCRIBEs to ingress and session frames,
but only the leader acts on them. When Redis goes away the hub keeps serving gRPC; the edge
retries with backoff and picks up by itself when Redis is back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from redis.exceptions import RedisError

from agentplex.background import Background
from agentplex.config import Settings
from agentplex.config.show import masked_url
from agentplex.edges.envelope_json import json_parts
from agentplex.edges.redis.ingress import Ingress, allow_list
from agentplex.edges.redis.leader import LeaderLock
from agentplex.edges.redis.mirror import Mirror
from agentplex.edges.redis.names import Names
from agentplex.edges.redis.sessions import RedisSessions
from agentplex.hub import Hub
from agentplex.redisconn import Backoff, connect, connect_pubsub
from agentplex.redisdirect import DirectSubscriber

log = logging.getLogger("agentplex.edges.redis")


def edge_url(settings: Settings) -> str:
    """`redis_edge.url`, or `engine.redis_url` when that is empty."""
    return settings.redis_edge.url or settings.engine.redis_url


class RedisEdge:
    def __init__(self, hub: Hub) -> None:
        settings = hub.settings
        cfg = settings.redis_edge
        self.hub = hub
        self.url = masked_url(edge_url(settings))
        self.names = Names(cfg.prefix)
        url = edge_url(settings)
        # PUBLISH and pub/sub work on any node of a Cluster; the leader lock is a key, so on the
        # engine's Cluster it needs a client that follows the key's slot.
        self.redis = connect_pubsub(settings.engine, url)
        self._same_redis = url == settings.engine.redis_url
        self.mirror_in_engine = False
        on_cluster = settings.engine.redis_cluster and self._same_redis
        self.lock_redis = connect(
            dataclasses.replace(settings.engine, redis_cluster=on_cluster), url
        )
        self.mirror = Mirror(hub, self.redis, self.names)
        self.ingress = Ingress(hub, allow_list(cfg.ingress))
        self.sessions = RedisSessions(hub, self.redis, self.names, self.ingress)
        self.leader = LeaderLock(
            self.lock_redis, self.names.leader_key, settings.engine.node_ttl, hub.node, self._led
        )
        self.subscribed = False
        self.reconnects = 0
        self._background = Background(log, "redis edge")

    async def start(self) -> None:
        """Start in the background: an unreachable Redis is retried, never fatal. On an engine
        whose channels live in this very Redis, the engine mirrors as it accepts (one step,
        no trip back through the node); otherwise the mirror here does."""
        if self._same_redis and self.hub.engine.mirror(self.names.msg(""), json_parts):
            self.mirror_in_engine = True
        else:
            await self.mirror.start()
            self._background.spawn(self.mirror.run())
        for work in (self.leader.run(), self._listen_forever()):
            self._background.spawn(work)
        log.info("redis edge on %s, prefix %r", self.url, self.names.prefix)

    async def stop(self) -> None:
        if self.mirror_in_engine:
            self.hub.engine.mirror("", None)
        await self._background.cancel()
        await self.sessions.close_all("hub shutting down")
        await self.leader.release()
        if not self.mirror_in_engine:
            await self.mirror.stop()
        await self.redis.aclose()
        await self.lock_redis.aclose()

    @property
    def ready(self) -> bool:
        """Listening on Redis and leading (so ingress and sessions are handled here)."""
        return self.subscribed and self.leader.held

    def _led(self, held: bool) -> None:
        if not held:
            self._background.spawn(
                self.sessions.close_all("this hub node no longer holds the Redis edge lock")
            )

    async def _listen_forever(self) -> None:
        backoff = Backoff()
        while True:
            try:
                await self._listen(backoff)
            except (RedisError, OSError) as err:
                log.warning("redis edge: lost %s (%s); reconnecting", self.url, err)
            finally:
                self.subscribed = False
            self.reconnects += 1
            await asyncio.sleep(backoff.delay())

    async def _listen(self, backoff: Backoff) -> None:
        names = self.names
        subscriber = DirectSubscriber(self.redis, "Redis edge's pub/sub")
        try:
            await subscriber.psubscribe(names.pub_pattern, names.session_in_pattern)
            self.subscribed = True
            backoff.reset()
            if not self.leader.held:
                await self.leader.attempt()
            async for reply in subscriber.replies():
                if reply[0] == b"pmessage" and self.leader.held:
                    await self._dispatch(reply[2], reply[3])
        finally:
            await subscriber.close()

    async def _dispatch(self, raw_channel: bytes, data: bytes) -> None:
        name = raw_channel.decode(errors="replace")
        try:
            channel = self.names.pub_channel(name)
            if channel is not None:
                await self.ingress.publish(channel, data)
                return
            session_id = self.names.session_id(name)
            if session_id is not None:
                self.sessions.feed(session_id, data)
        except Exception:  # one bad message must not stop the edge
            log.exception("redis edge: failed to handle a message on %r", name)


__all__ = ["RedisEdge"]
