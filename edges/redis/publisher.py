"""PUBLISH on one connection of its own, written the moment a message is accepted.

A redis-py pipeline checks a connection out of the pool, stacks command objects, wraps the call
in retries and runs a response callback per command, and its caller must be a task the event
loop wakes first: on the mirror's path that is most of the hub's share of a message's latency.
This keeps one connection (made by the client's pool, so TLS, password and database are the
pool's), writes packed PUBLISHes to its socket synchronously, from the fan-out call itself, and
leaves reading the replies (receiver counts, which nobody needs) to its owner's task. The
commands are packed here (RESP is a few length prefixes), for a tenth of what redis-py's general
packer costs.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError


def publish_command(channel: str, data: str) -> bytes:
    """`PUBLISH channel data` in RESP: an array of three bulk strings."""
    name, body = channel.encode(), data.encode()
    return b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
        len(name),
        name,
        len(body),
        body,
    )


class Publisher:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._pool = redis.connection_pool
        self._connection: AbstractConnection | None = None

    @property
    def connected(self) -> bool:
        return self._connection is not None

    async def connect(self) -> None:
        """Open the connection (a no-op while one is open); raises RedisError or OSError."""
        if self._connection is None:
            connection: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]
            await connection.connect()  # type: ignore[no-untyped-call]
            self._connection = connection

    def write(self, messages: list[tuple[str, str]]) -> bool:
        """PUBLISH each (channel, data), in order, without waiting for anything; False (and
        nothing written) when there is no open connection."""
        connection = self._connection
        # redis-py writes only from coroutines; its stream writer takes a synchronous write,
        # which is what puts the bytes on the socket within the fan-out call.
        writer = None if connection is None else connection._writer
        if connection is None or writer is None:
            return False
        writer.write(b"".join([publish_command(channel, data) for channel, data in messages]))
        return True

    async def read_reply(self) -> None:
        """Wait for the reply to the oldest PUBLISH written; raises when the connection fails."""
        if self._connection is None:
            raise RedisConnectionError("the mirror's connection to Redis is closed")
        await self._connection.read_response()

    async def close(self) -> None:
        """Drop the connection (what was written and not answered is the caller's to resend)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.disconnect(nowait=True)
