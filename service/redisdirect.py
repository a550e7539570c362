"""One Redis connection of its own, written the moment a caller has something to send.

A redis-py client checks a connection out of its pool per command, packs through a general
encoder, wraps the call in retries and runs a response callback, and its caller must be a task
the event loop wakes first; its reads go through a retry wrapper, a timeout and a push handler.
On a hot path (the mirror's PUBLISHes, the publish script, the Redis edge's incoming messages)
that is most of the hub's share of a round trip. This keeps one connection, made by the
client's pool (so TLS, password and database are the pool's), writes commands packed here
(RESP is a few length prefixes) to its socket synchronously, and parses what arrives with
hiredis; its owner reads the replies in the order the commands went out. `DirectSubscriber`
is such a connection in subscribed mode (the Redis edge's and the engine's fan-out's).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
    NoScriptError,
    ResponseError,
)


def bulk(data: bytes) -> bytes:
    """A RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(data), data)


def command(*parts: bytes) -> bytes:
    """A command in RESP: an array of bulk strings."""
    return b"*%d\r\n" % len(parts) + b"".join([bulk(part) for part in parts])


class DirectConnection:
    def __init__(self, redis: aioredis.Redis, name: str) -> None:
        self._pool = redis.connection_pool
        self._connection: AbstractConnection | None = None
        self._name = name  # whose connection, for errors
        self._parser = hiredis.Reader(replyError=ResponseError)

    @property
    def connected(self) -> bool:
        return self._connection is not None

    @property
    def alive(self) -> bool:
        """Open, and not closed by Redis meanwhile: an idle connection is not read, but its
        stream notes the end (Redis restarted, or its `timeout` closed idle clients)."""
        connection = self._connection
        if connection is None or connection._reader is None or connection._writer is None:
            return False
        return not (connection._reader.at_eof() or connection._writer.is_closing())

    async def connect(self) -> None:
        """Open the connection (a no-op while one is open); raises RedisError or OSError."""
        if self._connection is None:
            connection: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]
            await connection.connect()  # type: ignore[no-untyped-call]
            self._connection = connection
            self._parser = hiredis.Reader(replyError=ResponseError)  # nothing left from before

    def write(self, data: bytes) -> bool:
        """Send packed commands now, without waiting for anything; False (and nothing
        written) when there is no open connection."""
        connection = self._connection
        # redis-py writes only from coroutines; its stream writer takes a synchronous write,
        # which is what puts the bytes on the socket within the caller's own step.
        writer = None if connection is None else connection._writer
        if connection is None or writer is None:
            return False
        writer.write(data)
        return True

    async def read_reply(self) -> Any:
        """The reply to the oldest command not answered yet. An error reply is raised as
        redis-py's ResponseError (NoScriptError for NOSCRIPT; the connection stays usable); a
        failed connection raises ConnectionError or OSError. It waits as long as it takes: an
        owner that wants replies in time watches for them itself (see ScriptCalls)."""
        parser = self._parser
        while (reply := parser.gets()) is False:
            parser.feed(await self._read_bytes())
        if isinstance(reply, ResponseError):
            message = str(reply)
            raise NoScriptError(message) if message.startswith("NOSCRIPT") else reply
        return reply

    async def _read_bytes(self) -> bytes:
        connection = self._connection
        reader = None if connection is None else connection._reader
        if reader is None:
            raise RedisConnectionError(f"the {self._name} connection to Redis is closed")
        data = await reader.read(65536)
        if not data:
            raise RedisConnectionError(f"the {self._name} connection to Redis was closed")
        return data

    async def close(self) -> None:
        """Drop the connection (what was written and not answered is the caller's to resend)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.disconnect(nowait=True)


class DirectSubscriber:
    """A subscribed `DirectConnection`: what Redis pushes on it (messages and the
    confirmations of (un)subscribing, as lists: `[b"message", channel, data]`,
    `[b"pmessage", pattern, channel, data]`, `[b"subscribe", channel, count]`, ...)."""

    def __init__(self, redis: aioredis.Redis, name: str) -> None:
        self._connection = DirectConnection(redis, name)
        self._name = name
        self._early: list[Any] = []  # read while waiting for confirmations

    async def connect(self) -> None:
        await self._connection.connect()

    def send(self, *parts: bytes) -> None:
        """Write a command ((P)(UN)SUBSCRIBE); what Redis answers comes among `replies`."""
        if not self._connection.write(command(*parts)):
            raise RedisConnectionError(f"the {self._name} connection to Redis is closed")

    async def psubscribe(self, *patterns: str) -> None:
        """Connect and subscribe to patterns; returns once Redis confirmed every one."""
        await self.connect()
        self.send(b"PSUBSCRIBE", *(p.encode() for p in patterns))
        confirmed = 0
        while confirmed < len(patterns):
            reply = await self._connection.read_reply()
            if reply[0] == b"psubscribe":
                confirmed += 1
            else:
                self._early.append(reply)

    async def replies(self) -> AsyncIterator[Any]:
        """Everything Redis pushes, in order, until the connection fails."""
        early, self._early = self._early, []
        for reply in early:
            yield reply
        read = self._connection.read_reply
        while True:
            yield await read()

    async def close(self) -> None:
        await self._connection.close()
