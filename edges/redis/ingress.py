"""Ingress: what Redis clients PUBLISH on `<prefix>pub:<channel>` is published into the hub,
on channels the allow-list (`redis_edge.ingress`) admits. Anything refused is logged with the
reason and counted; nothing a Redis client sends can stop the edge."""

from __future__ import annotations

import logging

from agentplex.core.globmatch import match_any
from agentplex.edges.frames import Refused
from agentplex.edges.redis.codec import decode_publish
from agentplex.edges.redis.principal import ingress_principal
from agentplex.errors import HubError, PermissionDenied
from agentplex.hub import Hub

log = logging.getLogger("agentplex.edges.redis")


def allow_list(setting: str) -> tuple[str, ...]:
    """The patterns of `redis_edge.ingress`: comma-separated Redis globs, blanks ignored."""
    return tuple(p for p in (part.strip() for part in setting.split(",")) if p)


class Ingress:
    def __init__(self, hub: Hub, patterns: tuple[str, ...]) -> None:
        self.hub = hub
        self.patterns = patterns
        self.principal = ingress_principal(hub.auth.enabled, patterns)
        self.accepted = 0
        self.refused = 0

    def allows(self, channel: str) -> bool:
        return match_any(self.patterns, channel)

    def check(self, channel: str) -> None:
        """Refuse a channel outside the allow-list (for Redis sessions too, on top of their
        token's scopes)."""
        if not self.allows(channel):
            raise PermissionDenied(
                f"channel {channel!r} is not allowed by redis_edge.ingress "
                f"({','.join(self.patterns) or 'empty: no channel'})"
            )

    async def publish(self, channel: str, data: bytes) -> None:
        """Publish what arrived for `channel`, or log and count why not."""
        try:
            self.check(channel)
            await self.hub.publish(self.principal, [decode_publish(channel, data)])
        except (Refused, HubError) as err:
            self.refused += 1
            log.warning("redis edge: refused a publish on %r: %s", channel, err)
            return
        self.accepted += 1
