"""One Redis connection of its own, written the moment a caller has something to send.

A redis-py client checks a connection out of its pool per command, packs through a general
encoder, wraps the call in retries and runs a response callback, and its caller must be a task
the event loop wakes first: on a hot path (the mirror's PUBLISHes, the publish script) that is
most of the hub's share of a round trip. This keeps one connection, made by the client's pool
(so TLS, password and database are the pool's), writes commands packed here (RESP is a few
length prefixes) to its socket synchronously, and leaves reading the replies, in the order the
commands went out, to its owner.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError


def command(*parts: bytes) -> bytes:
    """A command in RESP: an array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class DirectConnection:
    def __init__(self, redis: aioredis.Redis, name: str) -> None:
        self._pool = redis.connection_pool
        self._connection: AbstractConnection | None = None
        self._name = name  # whose connection, for errors

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
        redis-py's ResponseError (the connection stays usable); a failed connection raises
        ConnectionError, TimeoutError (after the pool's socket timeout) or OSError."""
        if self._connection is None:
            raise RedisConnectionError(f"the {self._name} connection to Redis is closed")
        return await self._connection.read_response()

    async def close(self) -> None:
        """Drop the connection (what was written and not answered is the caller's to resend)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.disconnect(nowait=True)
