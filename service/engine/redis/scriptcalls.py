"""The publish script on a connection of its own (see `redisdirect.py`), which saves about 70 µs
of redis-py's client per round trip on the path every publish waits for. The command goes out
when `run` is called, within the caller's own step; replies are matched to callers in the order
their commands went out, so concurrent publishes, and the chunks of one batch, pipeline. A
connection that fails fails every call waiting on it, and the next call makes a new one, as it
does for a connection Redis closed while it was idle. So does one silent for the client's socket
timeout (`engine.redis_timeout`) while calls wait: a watchdog timer, armed while anything waits,
checks that, so no read pays for a timeout of its own.

Standalone Redis only: a Cluster client routes each script to the node of its keys' slot.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
    NoScriptError,
    ResponseError,
    TimeoutError as RedisTimeoutError,
)

from agentplex.redisdirect import DirectConnection, bulk

_EVALSHA, _EVAL = bulk(b"EVALSHA"), bulk(b"EVAL")

Arg = bytes | str | int


def _bulk(value: Arg) -> bytes:
    if isinstance(value, str):
        return bulk(value.encode())
    return bulk(b"%d" % value if isinstance(value, int) else value)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A script's keys and leading arguments, encoded once for every call that repeats them
    (a channel's keys and names, the retention settings)."""

    keys: list[str]
    args: list[Arg]
    count: int  # RESP bulk strings in `encoded`
    encoded: bytes


def prepare(keys: Sequence[str], args: Sequence[Arg] = ()) -> Prepared:
    parts = [_bulk(len(keys)), *map(_bulk, keys), *map(_bulk, args)]
    return Prepared(list(keys), list(args), len(parts), b"".join(parts))


class ScriptCalls:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._connection = DirectConnection(redis, "publish script's")
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._wake = asyncio.Event()
        self._opening = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._shas: dict[str, bytes] = {}
        self._timeout: float | None = redis.connection_pool.connection_kwargs.get("socket_timeout")
        self._progress = 0.0  # when the last reply came, or a call went to an idle connection
        self._watchdog: asyncio.TimerHandle | None = None

    def run(
        self, script: AsyncScript, prepared: Prepared, args: Sequence[Arg] = ()
    ) -> Awaitable[Any]:
        """Run `script` with the prepared keys and arguments, then `args`, as EVALSHA: on an
        open connection the command goes out now, before this returns (so calls made one
        after the other run in that order, and Redis runs one while the caller prepares the
        next); the reply is to await. Sent again whole (EVAL) when Redis no longer has the
        script (a restart, SCRIPT FLUSH)."""
        tail = prepared.encoded + b"".join([_bulk(a) for a in args])
        head = b"*%d\r\n" % (prepared.count + len(args) + 2)
        sha = self._shas.get(script.sha)
        if sha is None:
            sha = self._shas[script.sha] = _bulk(script.sha)
        command = head + _EVALSHA + sha + tail
        sent = self._send(command) if self._connection.alive else self._open_and_send(command)
        return self._reply(sent, script, head, tail)

    async def _reply(
        self, sent: Awaitable[Any], script: AsyncScript, head: bytes, tail: bytes
    ) -> Any:
        try:
            return await sent
        except NoScriptError:
            source = script.script
            body = source.encode() if isinstance(source, str) else bytes(source)
            return await self._open_and_send(head + _EVAL + bulk(body) + tail)

    def _send(self, data: bytes) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._connection.write(data):
            raise RedisConnectionError("the publish script's connection to Redis is closed")
        if not self._waiting:
            self._progress = time.monotonic()
            if self._watchdog is None and self._timeout:
                self._watchdog = loop.call_later(self._timeout, self._watch)
        self._waiting.append(future)
        self._wake.set()
        return future

    def _watch(self) -> None:
        """While calls wait: fail them all once Redis has been silent for the timeout."""
        self._watchdog = None
        timeout = self._timeout
        if not self._waiting or not timeout:
            return
        silent = time.monotonic() - self._progress
        if silent < timeout:
            self._watchdog = asyncio.get_running_loop().call_later(timeout - silent, self._watch)
            return
        self._fail_waiting(
            RedisTimeoutError(
                f"Redis sent no reply to the publish script for {timeout:g}s (engine.redis_timeout)"
            )
        )
        if self._reader is not None:
            self._reader.cancel()  # it closes the connection

    async def _open_and_send(self, data: bytes) -> Any:
        await self._open()
        return await self._send(data)

    async def _open(self) -> None:
        async with self._opening:
            if self._connection.alive:
                return
            await self.close()  # the reader of a connection Redis closed, if any
            await self._connection.connect()
            self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        """Hand each reply to the oldest waiting call; on a failure, fail them all."""
        waiting = self._waiting
        try:
            while True:
                while not waiting:
                    self._wake.clear()
                    await self._wake.wait()
                try:
                    reply = await self._connection.read_reply()
                except ResponseError as err:  # an error reply: the connection is fine
                    reply = err
                self._progress = time.monotonic()
                future = waiting.popleft()
                if future.done():  # its caller was cancelled
                    continue
                if isinstance(reply, ResponseError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except asyncio.CancelledError:
            await self._fail(RedisConnectionError("the publish script's connection was closed"))
            raise
        except Exception as err:  # the connection failed: it is made again
            await self._fail(err)

    async def _fail(self, err: Exception) -> None:
        self._fail_waiting(err)
        await self._connection.close()

    def _fail_waiting(self, err: Exception) -> None:
        waiting = self._waiting
        while waiting:
            future = waiting.popleft()
            if not future.done():
                future.set_exception(err)

    async def close(self) -> None:
        """Drop the connection; calls waiting on it fail with ConnectionError."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        await self._connection.close()
