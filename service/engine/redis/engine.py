"""The Redis engine: the engine interface over one shared Redis, so several hub nodes act as
one hub. Positions, history (a stream per channel), the dedup window, the registry, tasks, the
queue and node leases live in Redis; the scripts in `scripts.py` make each step atomic, and
`Fanout` carries publications and node messages between nodes.

While Redis cannot be reached every operation fails at once with UNAVAILABLE (nothing is
accepted that could not be kept) and `available` is False; a watcher notices when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import redis.asyncio as aioredis
from google.protobuf.message import DecodeError
from redis.exceptions import ClusterError, ConnectionError, RedisClusterException, TimeoutError

from agentplex.background import cancel_and_wait
from agentplex.config import EngineSettings
from agentplex.config.show import masked_url
from agentplex.core.channel_log import (
    Accepted,
    Replay,
    Retention,
    intact,
    new_epoch,
    replay_start,
)
from agentplex.core.wire import with_position
from agentplex.engine.base import (
    Engine,
    JsonParts,
    NodeMessageHandler,
    Outcome,
    PublicationHandler,
)
from agentplex.engine.redis import scripts
from agentplex.engine.redis.fanout import Fanout
from agentplex.engine.redis.keys import Keys
from agentplex.engine.redis.scriptcalls import Prepared, ScriptCalls, prepare
from agentplex.errors import Unavailable
from agentplex.redisconn import connect, connect_pubsub
from agentplex.v1 import agent_pb2, envelope_pb2, task_pb2

log = logging.getLogger("agentplex.engine.redis")

P = ParamSpec("P")
R = TypeVar("R")
# A cluster client that reaches no node raises RedisClusterException ("cannot be connected"),
# which is no RedisError. It also signals keys of one call in different slots, which `Keys`
# rules out by hash tags.
_UNREACHABLE = (ConnectionError, TimeoutError, ClusterError, RedisClusterException, OSError)
WATCH_INTERVAL = 0.5
GAP_PAGE = 1000
# Queue members sort by (priority descending, submit time, arrival): fixed-width digits.
_PRIORITY_BIAS = 1 << 31
_MEMBER_ID_AT = 10 + 20 + 20 + 1
_NAMES_KEPT = 4096  # channels whose key and pub/sub names are kept made
# Envelopes per publish script call: a batch on one channel takes several, pipelined, and no
# one call holds Redis long (a script blocks every other client while it runs).
PUBLISH_CHUNK = 50
# The five lengths ahead of each envelope in the publish script's argument, as the script's
# `struct.unpack('>I4I4I4I4I4', ...)` reads them: one C call there, no parsing of digits.
_LENGTHS = struct.Struct(">5I").pack


def _guarded(
    method: Callable[Concatenate[RedisEngine, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[RedisEngine, P], Coroutine[Any, Any, R]]:
    """Fail fast while Redis is unreachable, and turn connection errors into UNAVAILABLE."""

    @functools.wraps(method)
    async def call(self: RedisEngine, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if not self.available:
            raise Unavailable(self._unreachable)
        try:
            return await method(self, *args, **kwargs)
        except _UNREACHABLE as err:
            self._lost(err)
            raise Unavailable(f"{self._unreachable}: {err}") from None

    return call


def _pack(envelopes: list[envelope_pb2.Envelope], json: JsonParts | None) -> bytes:
    """The publish script's envelope argument: per envelope the lengths of its id, sha256,
    encoding (without a position) and, when mirroring, of its JSON before and after the
    position (`_LENGTHS`), then those parts."""
    parts: list[bytes] = []
    for env in envelopes:
        env.ClearField("position")
        key, sha, raw = env.id.encode(), env.sha256.encode(), env.SerializeToString()
        head, tail = (b"", b"") if json is None else (p.encode() for p in json(env))
        lengths = _LENGTHS(len(key), len(sha), len(raw), len(head), len(tail))
        parts += (lengths, key, sha, raw, head, tail)
    return b"".join(parts)


def _corrupt(channel: str, seq: int, epoch: str, created_ns: int) -> Accepted:
    """An entry whose stored bytes do not decode: an envelope with no sha256, so the hub's
    integrity check (which reads every entry) counts it and never delivers it."""
    envelope = envelope_pb2.Envelope(channel=channel)
    envelope.position.seq, envelope.position.epoch = seq, epoch
    return Accepted(envelope, seq, epoch, created_ns)


class RedisEngine(Engine):
    name = "redis"

    def __init__(self, retention: Retention, settings: EngineSettings) -> None:
        self.retention = retention
        self.settings = settings
        self.keys = Keys(settings.redis_prefix)
        # Any: redis-py types its replies as unions of every client's; these scripts and
        # commands return bytes (no decode_responses), as the contract tests check.
        self.redis: Any = connect(settings)
        self.available = True
        self._unreachable = (
            f"Redis at {masked_url(settings.redis_url)} (engine.redis_url) is unreachable; "
            "nothing was stored, retry later"
        )
        self._ttl_ms = retention.history_ttl_ns // 1_000_000
        self._dedup_ms = retention.dedup_window_ns // 1_000_000
        self._node = ""
        self._mirror: tuple[str, JsonParts] | None = None
        self._names: dict[str, Prepared] = {}
        self._fanout: Fanout | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._look_now = asyncio.Event()
        register = self.redis.register_script
        self._publish = register(scripts.PUBLISH)
        self._history = register(scripts.HISTORY)
        self._hash_pop = register(scripts.HASH_POP)
        self._claim_key = register(scripts.CLAIM_KEY)
        self._release_key = register(scripts.RELEASE_KEY)
        self._enqueue = register(scripts.ENQUEUE)
        self._dequeue = register(scripts.DEQUEUE)
        self._delete_task = register(scripts.DELETE_TASK)
        self._append_event = register(scripts.APPEND_EVENT)
        self._due_deadlines = register(scripts.DUE_DEADLINES)
        # The publish script, on every publish's path, skips redis-py's client (a Cluster
        # client routes it to its keys' node instead).
        self._publish_calls = (
            ScriptCalls(self.redis) if isinstance(self.redis, aioredis.Redis) else None
        )

    # Lifecycle and health -------------------------------------------------------------------

    async def start(
        self,
        on_publications: PublicationHandler,
        *,
        node: str = "",
        on_node_message: NodeMessageHandler | None = None,
    ) -> None:
        self._node = node
        try:
            await self.redis.ping()
        except _UNREACHABLE as err:
            raise Unavailable(f"{self._unreachable}: {err}") from None
        self._fanout = Fanout(
            lambda: connect_pubsub(self.settings),
            self.keys,
            node,
            on_publications,
            on_node_message or (lambda _: None),
            self._gap,
            self._position,
        )
        await self._fanout.start()
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def close(self) -> None:
        await cancel_and_wait(self._watcher)
        if self._fanout is not None:
            await self._fanout.close()
        if self._publish_calls is not None:
            await self._publish_calls.close()
        await self.redis.aclose()

    def _lost(self, err: BaseException) -> None:
        if self.available:
            log.error("Redis is unreachable (%s): refusing operations until it is back", err)
            # One connection that failed need not mean Redis is gone: the watcher looks at once
            # (then every WATCH_INTERVAL while it is), so a healthy Redis is trusted again
            # within a round trip.
            self._look_now.set()
        self.available = False

    async def _watch(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):  # asyncio's: redis-py's is imported
                await asyncio.wait_for(self._look_now.wait(), WATCH_INTERVAL)
            self._look_now.clear()
            try:
                await self.redis.ping()
            except _UNREACHABLE as err:
                self._lost(err)
                continue
            if not self.available:
                log.warning("Redis is reachable again")
                await self._drop_stale_connections()
                self.available = True

    async def _drop_stale_connections(self) -> None:
        """Close the pooled connections and the publish script's from before the outage: each
        would fail its next command (the Redis at their other end is gone), refusing work once
        more. New ones are made on demand. (A cluster client remakes its node connections by
        itself.)"""
        pool = getattr(self.redis, "connection_pool", None)
        if pool is not None:
            with contextlib.suppress(*_UNREACHABLE):
                await pool.disconnect()
        if self._publish_calls is not None:
            await self._publish_calls.close()

    def mirror(self, channel_prefix: str, parts: JsonParts | None) -> bool:
        self._mirror = None if parts is None else (channel_prefix, parts)
        self._names.clear()
        return True

    def _names_of(self, channel: str) -> Prepared:
        """A channel's publish script keys and leading arguments (its names and the retention
        settings), encoded once."""
        names = self._names.get(channel)
        if names is None:
            if len(self._names) >= _NAMES_KEPT:
                self._names.clear()
            mirror = self._mirror[0] + channel if self._mirror else ""
            names = self._names[channel] = prepare(
                self.keys.channel(channel),
                [
                    self.retention.history_size,
                    self._ttl_ms,
                    self._dedup_ms,
                    self.retention.dedup_size,
                    self.keys.fan(channel),
                    self._node,
                    mirror,
                ],
            )
        return names

    # Channels -------------------------------------------------------------------------------

    @_guarded
    async def publish(
        self, envelopes: Sequence[envelope_pb2.Envelope], now_ns: int
    ) -> list[Outcome]:
        now_ms = now_ns // 1_000_000
        json = self._mirror[1] if self._mirror else None
        groups: dict[str, list[envelope_pb2.Envelope]] = {}
        for env in envelopes:
            groups.setdefault(env.channel, []).append(env)
        calls: list[tuple[list[envelope_pb2.Envelope], Awaitable[Any]]] = []
        for channel, group in groups.items():
            names = self._names_of(channel)
            if self._publish_calls is None:  # a Cluster client: one call per channel
                everything = [*names.args, now_ms, new_epoch(), _pack(group, json)]
                calls.append((group, self._publish(keys=names.keys, args=everything)))
                continue
            # In chunks, each sent as soon as it is packed: Redis runs one while the next is
            # packed, and runs them in the order sent.
            for start in range(0, len(group), PUBLISH_CHUNK):
                chunk = group[start : start + PUBLISH_CHUNK]
                args = (now_ms, new_epoch(), _pack(chunk, json))
                calls.append((chunk, self._publish_calls.run(self._publish, names, args)))
        # One call (the usual case) is awaited as it is: gather would make it a task, and on a
        # Cluster client send the script a loop iteration later.
        if len(calls) == 1:
            replies = [await calls[0][1]]
        else:
            replies = await asyncio.gather(*(call for _, call in calls))
        found: dict[int, Outcome] = {}
        for (chunk, _), reply in zip(calls, replies, strict=True):
            epoch = reply[0].decode()
            for k, env in enumerate(chunk):
                seq, duplicate, sha256 = reply[1 + 3 * k : 4 + 3 * k]
                found[id(env)] = Outcome(seq, epoch, sha256.decode(), bool(duplicate))
        return [found[id(env)] for env in envelopes]

    @_guarded
    async def history(self, channel: str, seq: int | None, epoch: str | None, limit: int) -> Replay:
        keys = self.keys.channel(channel)[:2]
        now_ms = time.time_ns() // 1_000_000
        wanted = "" if seq is None else seq + 1
        reply = await self._history(keys=keys, args=[now_ms, self._ttl_ms, wanted, limit])
        if not reply:  # never published (or lost): nothing to miss from the start
            return Replay([], 0, "", seq is None or seq == 0)
        current, top, first, used, entries = reply
        current = current.decode()
        start, recovered = replay_start(seq, epoch, current, first, top, limit)
        if start > top:
            entries = []
        elif start != used:  # another epoch, or a position before the history: what is left
            reply = await self._history(keys=keys, args=[now_ms, self._ttl_ms, start, limit])
            entries = reply[4] if reply else []
        return Replay([self._entry(channel, current, e) for e in entries], top, current, recovered)

    async def _position(self, channel: str) -> tuple[int, str]:
        """A channel's (top, epoch) now, for the fan-out."""
        page = await self.history(channel, None, None, 0)
        return page.top, page.epoch

    async def _gap(self, channel: str, seq: int, epoch: str) -> list[Accepted]:
        """Everything `channel` holds after (seq, epoch), page by page (for the fan-out)."""
        entries: list[Accepted] = []
        while True:
            page = await self.history(channel, seq, epoch, GAP_PAGE)
            for entry in page.entries:
                if intact(entry):
                    entries.append(entry)
                else:  # never delivered as good data (reads through the hub count these)
                    log.warning(
                        "integrity failure: %s seq %d does not match its sha256; not delivered",
                        channel,
                        entry.seq,
                    )
            if len(page.entries) < GAP_PAGE:
                return entries
            seq, epoch = page.entries[-1].seq, page.epoch

    def _entry(self, channel: str, epoch: str, entry: list[Any]) -> Accepted:
        """A history entry: fields t (accepted, ms), n (the node that accepted it), e (the
        envelope without its position)."""
        stream_id, fields = entry
        seq = int(stream_id.split(b"-", 1)[0])
        created_ns = int(fields[1]) * 1_000_000
        wire = with_position(fields[5], seq, epoch)
        try:
            envelope = envelope_pb2.Envelope.FromString(wire)
        except DecodeError:
            return _corrupt(channel, seq, epoch, created_ns)
        local = fields[3].decode() == self._node
        return Accepted(envelope, seq, epoch, created_ns, wire=wire, local=local)

    async def listen(self, channel: str) -> None:
        if self._fanout is not None:
            await self._fanout.listen(channel)

    async def unlisten(self, channel: str) -> None:
        if self._fanout is not None:
            await self._fanout.unlisten(channel)

    # Registry -------------------------------------------------------------------------------

    @_guarded
    async def put_agent(self, agent: agent_pb2.Agent) -> None:
        await self.redis.hset(self.keys.agents, agent.card.id, agent.SerializeToString())

    @_guarded
    async def get_agent(self, agent_id: str) -> agent_pb2.Agent | None:
        raw = await self.redis.hget(self.keys.agents, agent_id)
        return None if raw is None else agent_pb2.Agent.FromString(raw)

    @_guarded
    async def delete_agent(self, agent_id: str) -> agent_pb2.Agent | None:
        raw = await self._hash_pop(keys=[self.keys.agents], args=[agent_id])
        return None if raw is None else agent_pb2.Agent.FromString(raw)

    @_guarded
    async def list_agents(self) -> list[agent_pb2.Agent]:
        stored = await self.redis.hvals(self.keys.agents)
        return [agent_pb2.Agent.FromString(raw) for raw in stored]

    # Tasks ----------------------------------------------------------------------------------

    @_guarded
    async def put_task(self, task: task_pb2.Task) -> None:
        await self.redis.hset(self.keys.tasks, task.id, task.SerializeToString())

    @_guarded
    async def get_task(self, task_id: str) -> task_pb2.Task | None:
        raw = await self.redis.hget(self.keys.tasks, task_id)
        return None if raw is None else task_pb2.Task.FromString(raw)

    @_guarded
    async def list_tasks(self) -> list[task_pb2.Task]:
        return [task_pb2.Task.FromString(raw) for raw in await self.redis.hvals(self.keys.tasks)]

    @_guarded
    async def delete_task(self, task_id: str) -> None:
        k = self.keys
        keys = [k.tasks, k.events(task_id), k.event_numbers, k.queue, k.queued]
        await self._delete_task(keys=[*keys, k.idempotency, k.key_of, k.deadlines], args=[task_id])

    @_guarded
    async def claim_idempotency_key(self, key: str, task_id: str) -> str:
        keys = [self.keys.idempotency, self.keys.key_of]
        holder: bytes = await self._claim_key(keys=keys, args=[key, task_id])
        return holder.decode()

    @_guarded
    async def release_idempotency_key(self, key: str, task_id: str) -> None:
        await self._release_key(keys=[self.keys.idempotency, self.keys.key_of], args=[key, task_id])

    @_guarded
    async def append_task_event(self, event: task_pb2.TaskEvent, keep: int) -> int:
        task_id = event.task.id
        event.number = 0
        keys = [self.keys.event_numbers, self.keys.events(task_id)]
        number: int = await self._append_event(
            keys=keys, args=[task_id, keep, event.SerializeToString()]
        )
        event.number = number
        return number

    @_guarded
    async def task_events(self, task_id: str, after: int) -> list[task_pb2.TaskEvent]:
        stored = await self.redis.xrange(self.keys.events(task_id), f"{after + 1}-0", "+")
        events = []
        for stream_id, fields in stored:
            event = task_pb2.TaskEvent.FromString(fields[b"e"])
            event.number = int(stream_id.split(b"-", 1)[0])
            events.append(event)
        return events

    @_guarded
    async def enqueue_task(self, task_id: str, priority: int, created_ns: int) -> None:
        prefix = f"{_PRIORITY_BIAS - priority:010d}{created_ns:020d}"
        keys = [self.keys.queue, self.keys.queued, self.keys.order]
        await self._enqueue(keys=keys, args=[task_id, prefix])

    @_guarded
    async def dequeue_task(self, task_id: str) -> bool:
        taken = await self._dequeue(keys=[self.keys.queue, self.keys.queued], args=[task_id])
        return bool(taken)

    @_guarded
    async def set_deadline(self, task_id: str, deadline_ns: int) -> None:
        await self.redis.zadd(self.keys.deadlines, {task_id: deadline_ns // 1_000_000})

    @_guarded
    async def due_deadlines(self, now_ns: int) -> list[str]:
        due = await self._due_deadlines(keys=[self.keys.deadlines], args=[now_ns // 1_000_000])
        return [task_id.decode() for task_id in due]

    @_guarded
    async def pending_tasks(self, start: int = 0, count: int = 0) -> list[str]:
        stop = start + count - 1 if count else -1
        members = await self.redis.zrange(self.keys.queue, start, stop)
        return [member[_MEMBER_ID_AT:].decode() for member in members]

    # Nodes ----------------------------------------------------------------------------------

    @_guarded
    async def beat(self, node: str, expires_ns: int) -> bool:
        added = await self.redis.zadd(self.keys.nodes, {node: expires_ns // 1_000_000})
        return not added

    @_guarded
    async def expired_nodes(self, now_ns: int) -> list[str]:
        found = await self.redis.zrangebyscore(self.keys.nodes, "-inf", now_ns // 1_000_000)
        return [node.decode() for node in found]

    @_guarded
    async def nodes(self) -> dict[str, int]:
        leases = await self.redis.zrange(self.keys.nodes, 0, -1, withscores=True)
        return {node.decode(): int(expiry_ms) * 1_000_000 for node, expiry_ms in leases}

    @_guarded
    async def forget_node(self, node: str) -> bool:
        return bool(await self.redis.zrem(self.keys.nodes, node))

    @_guarded
    async def send_to_node(self, node: str, payload: bytes) -> None:
        await self.redis.publish(self.keys.node(node), payload)

    @_guarded
    async def broadcast(self, payload: bytes) -> None:
        await self.redis.publish(self.keys.every_node, payload)
