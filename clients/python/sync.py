"""A blocking facade over `Client` for scripts and REPLs: an event loop runs in a thread.

with SyncClient("127.0.0.1:50051") as hub:
    hub.publish("chat", "hello")
    for envelope in hub.subscribe("chat", count=1):
        print(envelope.payload)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

from agentplex.client.channel import Tls
from agentplex.client.client import Client
from agentplex.v1 import agent_pb2, envelope_pb2, messaging_service_pb2 as ms

T = TypeVar("T")


class SyncClient:
    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float = 10.0,
        token: str | None = None,
        tls: Tls | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._client = self._run(self._make(address, timeout=timeout, token=token, tls=tls))

    @staticmethod
    async def _make(address: str | None, **options: Any) -> Client:
        return Client(address, **options)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    def publish(
        self, channel: str, payload: bytes | str, **fields: Any
    ) -> envelope_pb2.PublishResult:
        return self._run(self._client.publish(channel, payload, **fields))

    def publish_batch(
        self, envelopes: list[envelope_pb2.Envelope]
    ) -> list[envelope_pb2.PublishResult]:
        return self._run(self._client.publish_batch(envelopes))

    def history(
        self, channel: str, *, since: int | None = None, limit: int = 0
    ) -> ms.HistoryResponse:
        return self._run(self._client.history(channel, since=since, limit=limit))

    def agents(self, **filters: Any) -> list[agent_pb2.Agent]:
        return self._run(self._client.agents(**filters))

    def subscribe(
        self, *channels: str, since: dict[str, int] | None = None, count: int | None = None
    ) -> Iterator[envelope_pb2.Envelope]:
        """Yield envelopes as they arrive; stops after `count` when given."""
        sub = self._client.subscribe(*channels, since=since)
        iterator = sub.__aiter__()

        async def step() -> envelope_pb2.Envelope:
            return await anext(iterator)

        received = 0
        try:
            while count is None or received < count:
                yield self._run(step())
                received += 1
        finally:
            self._loop.call_soon_threadsafe(sub.cancel)
