"""The Redis pub/sub channel names of the edge, for one prefix (`redis_edge.prefix`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Names:
    prefix: str = "agentplex:"

    def msg(self, channel: str) -> str:
        """Where envelopes accepted on `channel` are mirrored."""
        return f"{self.prefix}msg:{channel}"

    @property
    def pub_pattern(self) -> str:
        """Where Redis clients publish into the hub (PSUBSCRIBE pattern)."""
        return f"{self._escaped}pub:*"

    @property
    def session_in_pattern(self) -> str:
        """Where Redis-only agents send session frames (PSUBSCRIBE pattern)."""
        return f"{self._escaped}session:*:in"

    def session_out(self, session_id: str) -> str:
        return f"{self.prefix}session:{session_id}:out"

    @property
    def leader_key(self) -> str:
        """The lock naming the node that handles ingress and Redis sessions."""
        return f"{self.prefix}edge:leader"

    def pub_channel(self, redis_channel: str) -> str | None:
        """The hub channel of a `<prefix>pub:<channel>` name, or None for another name."""
        head = f"{self.prefix}pub:"
        return redis_channel[len(head) :] if redis_channel.startswith(head) else None

    def session_id(self, redis_channel: str) -> str | None:
        """The id of a `<prefix>session:<id>:in` name, or None for another name."""
        head, tail = f"{self.prefix}session:", ":in"
        if redis_channel.startswith(head) and redis_channel.endswith(tail):
            return redis_channel[len(head) : -len(tail)]
        return None

    @property
    def _escaped(self) -> str:
        """The prefix with glob syntax escaped, so a pattern matches it literally."""
        return "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix)
