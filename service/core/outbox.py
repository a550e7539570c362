"""The bounded queue between the hub and one connection's writer.

Producers (fan-out, receipts) push synchronously; one writer awaits batches. A push beyond the
limit raises `Overflow` instead of growing memory: the session then disconnects the consumer
that cannot keep up.
"""

from __future__ import annotations

import asyncio

import grpc

from agentplex.core.channel_log import Accepted
from agentplex.v1 import session_service_pb2

# A delivery is (entry, attempt); anything else is a control frame sent as it is, either a
# message or already encoded.
Item = tuple[Accepted, int] | session_service_pb2.ConnectResponse | bytes


class Overflow(Exception):
    """The consumer fell `limit` items behind."""


class Outbox:
    __slots__ = ("_items", "_ready", "_room", "closed", "code", "limit", "reason")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: list[Item] = []
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.closed = False
        self.reason = ""
        self.code: grpc.StatusCode | None = None

    def put(self, item: Item) -> None:
        if self.closed:
            return
        if len(self._items) >= self.limit:
            raise Overflow(f"outbound queue reached {self.limit} frames (limits.session_queue)")
        self._items.append(item)
        self._ready.set()
        if len(self._items) > self.limit // 2:
            self._room.clear()

    def __len__(self) -> int:
        return len(self._items)

    async def take(self) -> list[Item]:
        """Everything queued, waiting until there is something or the outbox closes."""
        while not self._items:
            if self.closed:
                return []
            self._ready.clear()
            await self._ready.wait()
        items, self._items = self._items, []
        self._room.set()
        return items

    async def wait_for_room(self) -> None:
        """Wait until the queue is at most half full (replays pace themselves with this)."""
        while not self._room.is_set() and not self.closed:
            await self._room.wait()

    def close(self, reason: str = "", code: grpc.StatusCode | None = None) -> None:
        """Stop accepting items; the writer sends what is queued, then ends the connection
        (with `code` as its status when given)."""
        if not self.closed:
            self.closed = True
            self.reason = reason
            self.code = code
            self._ready.set()
            self._room.set()
