"""One node's pub/sub connection: publications of the channels (and patterns) its subscribers
want, and the messages other nodes address to it. Redis delivers a channel's publications in the
order the publish script ran, so every node sees every channel in seq order. A script sends all
it accepted on a channel as one message: a batch costs one pub/sub message, not one per envelope.

The connection is remade after a failure, with backoff, and everything subscribed before is
subscribed again. What was published meanwhile is then read from history and delivered before
anything live: for every channel this node heard from, after the last entry it passed on, and
for a channel subscribed by name that it never heard from, after the position the channel had
when this node began to listen. The node's subscribers see no gap. Each channel's publications
leave here in strictly increasing seq, so an entry heard twice (from history and live) goes out
once. A channel no listener here covers any more is forgotten: listening to it again starts
from then, not from where this node left off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from google.protobuf.message import DecodeError
from redis.exceptions import ConnectionError as RedisConnectionError, RedisError

from agentplex.background import cancel_and_wait
from agentplex.core.channel_log import Accepted
from agentplex.core.globmatch import covers, glob_match, is_pattern
from agentplex.core.wire import with_position
from agentplex.engine.base import NodeMessageHandler, PublicationHandler
from agentplex.engine.redis.keys import Keys
from agentplex.errors import Unavailable
from agentplex.redisconn import Backoff
from agentplex.redisdirect import DirectSubscriber
from agentplex.v1 import envelope_pb2

log = logging.getLogger("agentplex.engine.redis")

# Reads a channel's history after (seq, epoch): every entry up to its top.
GapReader = Callable[[str, int, str], Awaitable[list[Accepted]]]
# A channel's current position: (top, epoch); (0, "") for a channel Redis does not know.
PositionReader = Callable[[str], Awaitable[tuple[int, str]]]
# What precedes each envelope in a fan-out message: its seq and its length.
_ENTRY = struct.Struct(">QI")


def decode_publications(data: bytes, node: str) -> list[Accepted]:
    """One publish script's fan-out message: `epoch node created_ms`, a newline, then per
    envelope its seq and length (`_ENTRY`) and the envelope as sent (without its position)."""
    head, _, body = data.partition(b"\n")
    epoch_bytes, origin, created_ms = head.split(b" ")
    epoch, local, created_ns = (
        epoch_bytes.decode(),
        origin.decode() == node,
        int(created_ms) * 10**6,
    )
    entries = []
    at, end = 0, len(body)
    while at < end:
        seq, size = _ENTRY.unpack_from(body, at)
        start = at + _ENTRY.size
        at = start + size
        if at > end:
            raise ValueError("a fan-out message ends inside an envelope")
        wire = with_position(body[start:at], seq, epoch)
        envelope = envelope_pb2.Envelope.FromString(wire)
        entries.append(Accepted(envelope, seq, epoch, created_ns, local=local, wire=wire))
    return entries


class Fanout:
    def __init__(
        self,
        connect: Callable[[], aioredis.Redis],
        keys: Keys,
        node: str,
        on_publications: PublicationHandler,
        on_node_message: NodeMessageHandler,
        read_gap: GapReader,
        read_position: PositionReader,
    ) -> None:
        self._connect = connect
        self._read_gap = read_gap
        self._read_position = read_position
        self._heard: dict[str, tuple[int, str]] = {}  # channel -> last (seq, epoch) passed on
        # Channels listened to by name -> their position then, while nothing was heard from them.
        self._since: dict[str, tuple[int, str]] = {}
        self._held: list[Accepted] | None = None  # live entries waiting behind a gap fill
        self._keys = keys
        self._node = node
        self._node_channels = (keys.node(node).encode(), keys.every_node.encode())
        self._on_publications = on_publications
        self._on_node_message = on_node_message
        self._wanted: set[str] = set()  # hub channels and patterns
        self._subscriber: DirectSubscriber | None = None
        self._confirmations: dict[bytes, asyncio.Future[None]] = {}
        self._connected = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._runner = asyncio.get_running_loop().create_task(self._run())
        await self._connected.wait()

    async def close(self) -> None:
        await cancel_and_wait(self._runner)

    async def listen(self, channel: str) -> None:
        """Subscribe, and return once Redis confirmed it (a publish after this is heard). A
        channel named outright has its position read first, the start of what a reconnect
        reads from history should nothing be heard from it before the connection fails."""
        self._wanted.add(channel)
        if not is_pattern(channel) and channel not in self._heard:
            # Unreadable (Redis is away): nothing to start from; the subscriber's own
            # subscribe reads the channel too, and fails the same way.
            with contextlib.suppress(Unavailable):
                self._since[channel] = await self._read_position(channel)
        subscriber = self._subscriber
        if subscriber is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._subscribe(subscriber, [channel])
        # Not connected: the reconnect subscribes everything wanted.

    async def unlisten(self, channel: str) -> None:
        self._wanted.discard(channel)
        self._forget(channel)
        if self._subscriber is not None:
            verb = b"PUNSUBSCRIBE" if is_pattern(channel) else b"UNSUBSCRIBE"
            with contextlib.suppress(RedisError, OSError):
                self._subscriber.send(verb, self._keys.fan(channel).encode())

    def _forget(self, unwanted: str) -> None:
        """Drop the positions of the channels `unwanted` covered that nothing wanted covers."""
        if is_pattern(unwanted):
            covered = [c for c in (*self._heard, *self._since) if glob_match(unwanted, c)]
        else:
            covered = [unwanted]
        for channel in covered:
            if not self._wants(channel):
                self._heard.pop(channel, None)
                self._since.pop(channel, None)

    async def _subscribe(self, subscriber: DirectSubscriber, channels: list[str]) -> None:
        loop = asyncio.get_running_loop()
        waits = []
        for channel in channels:
            name = self._keys.fan(channel).encode()
            future = self._confirmations.get(name)
            if future is None or future.done():
                future = self._confirmations[name] = loop.create_future()
            waits.append(future)
            subscriber.send(b"PSUBSCRIBE" if is_pattern(channel) else b"SUBSCRIBE", name)
        await asyncio.gather(*waits)

    async def _run(self) -> None:
        backoff = Backoff()
        client = self._connect()
        try:
            while True:
                subscriber = DirectSubscriber(client, "fan-out's pub/sub")
                reader: asyncio.Task[None] | None = None
                try:
                    await subscriber.connect()
                    subscriber.send(b"SUBSCRIBE", *self._node_channels)
                    reader = asyncio.get_running_loop().create_task(self._read(subscriber))
                    self._held = []
                    # From here a `listen` subscribes by itself: one made while the reconnect
                    # subscribes and reads history is not left out.
                    self._subscriber = subscriber
                    await self._subscribe(subscriber, sorted(self._wanted))
                    await self._fill_gaps()
                    self._connected.set()
                    backoff.reset()
                    await reader
                except (RedisError, OSError, Unavailable) as err:
                    log.warning("redis pub/sub connection lost (%s); reconnecting", err)
                except Exception:  # a bug here must not end the node's fan-out for good
                    log.exception("redis pub/sub: the fan-out failed; reconnecting")
                finally:
                    self._held = None
                    self._subscriber = None
                    self._connected.clear()
                    await cancel_and_wait(reader)
                    self._unconfirmed()
                    await subscriber.close()
                await asyncio.sleep(backoff.delay())
        finally:
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    def _pass_on(self, entries: Sequence[Accepted]) -> None:
        """Hand entries on in increasing seq per channel, skipping any already passed on."""
        heard = self._heard
        fresh = []
        for entry in entries:
            last = heard.get(entry.channel)
            if last is not None and entry.seq <= last[0] and entry.epoch == last[1]:
                continue
            heard[entry.channel] = (entry.seq, entry.epoch)
            fresh.append(entry)
        if fresh:
            self._on_publications(fresh)

    async def _fill_gaps(self) -> None:
        """After a reconnect: what each channel published meanwhile, from history, then the
        live entries that arrived during the reads."""
        starts = {**self._since, **self._heard}  # where a channel was heard from, if it was
        self._since = {c: start for c, start in self._since.items() if c not in self._heard}
        for channel, (seq, epoch) in starts.items():
            if self._wants(channel):
                self._pass_on(await self._read_gap(channel, seq, epoch))
            else:  # nobody here listens any more: forget it
                self._heard.pop(channel, None)
                self._since.pop(channel, None)
        held, self._held = self._held or [], None
        self._pass_on(held)

    def _wants(self, channel: str) -> bool:
        """A channel or pattern this node listens to covers `channel`."""
        return covers(self._wanted, channel)

    async def _read(self, subscriber: DirectSubscriber) -> None:
        try:
            async for reply in subscriber.replies():
                try:
                    self._dispatch(reply)
                except Exception:  # a handler's bug must not cost the node its fan-out
                    log.exception("handling a pub/sub message failed")
        finally:
            self._unconfirmed()  # no confirmation comes on a connection that ended

    def _unconfirmed(self) -> None:
        """Fail the (un)subscriptions still waiting for Redis's confirmation with a connection
        error, which their callers expect (the reconnect subscribes what is wanted)."""
        for future in self._confirmations.values():
            if not future.done():
                future.set_exception(
                    RedisConnectionError("the fan-out's pub/sub connection to Redis was lost")
                )
        self._confirmations.clear()

    def _dispatch(self, reply: list[Any]) -> None:
        """`[b"message", channel, data]`, `[b"pmessage", pattern, channel, data]`, or the
        confirmation of a subscription."""
        kind = reply[0]
        if kind == b"message" or kind == b"pmessage":
            channel, data = reply[-2], reply[-1]
            if channel in self._node_channels:
                self._on_node_message(data)
                return
            try:
                entries = decode_publications(data, self._node)
            except (ValueError, struct.error, DecodeError):
                log.warning("dropped an undecodable message on %r", channel)
                return
            if self._held is not None:
                self._held.extend(entries)
            else:
                self._pass_on(entries)
        elif kind == b"subscribe" or kind == b"psubscribe":
            future = self._confirmations.pop(reply[1], None)
            if future is not None and not future.done():
                future.set_result(None)
