"""Where the Redis engine keeps things. Every key carries a hash tag (`{...}`), so the keys one
script touches share a Redis Cluster slot: one slot per channel, one for the registry, one for
the tasks. Pub/sub channel names need no tags (PUBLISH reaches the whole cluster)."""

from __future__ import annotations


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        registry = f"{prefix}:{{registry}}"
        self.agents = f"{registry}:agents"  # hash: agent id -> Agent
        self.nodes = f"{registry}:nodes"  # sorted set: node -> lease expiry (ms)
        tasks = f"{prefix}:{{tasks}}"
        self.tasks = f"{tasks}:all"  # hash: task id -> Task
        self.idempotency = f"{tasks}:keys"  # hash: idempotency key -> task id
        self.key_of = f"{tasks}:key-of"  # hash: task id -> its idempotency key
        self.queue = f"{tasks}:queue"  # sorted set of members that sort in dispatch order
        self.queued = f"{tasks}:queued"  # hash: task id -> its member in the queue
        self.order = f"{tasks}:order"  # counter: ties in the queue go to the older
        self.deadlines = f"{tasks}:deadlines"  # sorted set: task id -> deadline (ms)
        self.event_numbers = f"{tasks}:event-numbers"  # hash: task id -> last event number
        self._events = f"{tasks}:events:"  # stream per task, entry ids are event numbers
        self._fan = f"{prefix}:fan:"
        self._node = f"{prefix}:node:"
        self.every_node = f"{prefix}:nodes"  # pub/sub: messages for every node

    def channel(self, name: str) -> list[str]:
        """meta (epoch, top), log (stream, entry id = seq), ids (envelope id -> "seq:sha256"),
        idx (envelope ids by dedup expiry)."""
        tag = f"{self.prefix}:{{ch:{name}}}"
        return [f"{tag}:meta", f"{tag}:log", f"{tag}:ids", f"{tag}:idx"]

    def events(self, task_id: str) -> str:
        return self._events + task_id

    def fan(self, channel: str) -> str:
        """The pub/sub channel (or pattern) every node hears a hub channel's publications on."""
        return self._fan + channel

    def node(self, node: str) -> str:
        """The pub/sub channel of messages addressed to one node."""
        return self._node + node
