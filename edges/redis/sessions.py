"""Sessions over Redis: frames from `<prefix>session:<id>:in` feed a `Connection` (the one the
gRPC servicer uses) and what its outbox yields is PUBLISHed on `<prefix>session:<id>:out`, one
JSON frame per message.

Redis pub/sub has no connection to lose, so a Redis connection lives from its first frame until
the session ends (goodbye, a fatal error, or silence past `session.heartbeat_timeout`); a later
frame on the same id opens a new one, which must begin with hello (a resume token continues the
old session).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from agentplex.background import cancel_and_wait
from agentplex.core.validation import check_id
from agentplex.edges.frames import Refused, json_frames, parse_json_frame, to_json
from agentplex.edges.redis.ingress import Ingress
from agentplex.edges.redis.names import Names
from agentplex.errors import HubError, InvalidArgument, PermissionDenied, ResourceExhausted
from agentplex.hub import Hub
from agentplex.hub.connection import Connection
from agentplex.hub.session import Frame
from agentplex.v1 import agent_pb2, session_service_pb2 as ss

log = logging.getLogger("agentplex.edges.redis")


class RedisConnection:
    def __init__(
        self, hub: Hub, redis: aioredis.Redis, out: str, session_id: str, ingress: Ingress
    ) -> None:
        self.redis = redis
        self.out = out
        self.ingress = ingress
        self.connection = Connection(
            hub, agent_pb2.TRANSPORT_REDIS, peer=f"redis:session:{session_id}"
        )
        self.limit = hub.limits.session_queue
        self._inbound: asyncio.Queue[ss.ConnectRequest] = asyncio.Queue(self.limit)

    @property
    def finished(self) -> bool:
        return self.connection.outbox.closed

    def feed(self, data: bytes) -> None:
        """Queue one frame from the client; a bad one is answered with an error frame."""
        try:
            frame = parse_json_frame(data)
            if frame.WhichOneof("frame") == "batch":
                inner = frame.batch.frames
                kept = [f for f in inner if self._admitted(f)]
                if not kept:
                    return
                if len(kept) < len(inner):
                    frame = ss.ConnectRequest(
                        ref=frame.ref, batch=ss.ConnectRequestBatch(frames=kept)
                    )
            elif not self._admitted(frame):
                return
            self._inbound.put_nowait(frame)
        except Refused as err:
            self.connection.refuse(InvalidArgument(err.reason), err.ref)
        except asyncio.QueueFull:
            self.connection.refuse(
                ResourceExhausted(
                    f"more than {self.limit} frames from the client wait to be handled "
                    "(limits.session_queue)"
                ),
                fatal=True,
            )

    def _admitted(self, frame: ss.ConnectRequest) -> bool:
        """A publish on a channel outside `redis_edge.ingress` is answered with an error frame
        and goes no further, whether it came alone or inside a batch."""
        if frame.WhichOneof("frame") != "publish":
            return True
        try:
            for env in frame.publish.envelopes:
                self.ingress.check(env.channel)
        except PermissionDenied as err:
            self.connection.refuse(err, frame.ref)
            return False
        return True

    def close(self, reason: str) -> None:
        self.connection.outbox.close(reason, grpc.StatusCode.UNAVAILABLE)

    async def run(self) -> None:
        """Serve the session and write its frames until it ends, then let it detach."""
        reader = asyncio.create_task(self.connection.serve(self._frames()))
        try:
            await self._write()
        finally:
            await cancel_and_wait(reader)
            self.connection.detach()

    async def _frames(self) -> AsyncIterator[ss.ConnectRequest]:
        while True:
            yield await self._inbound.get()

    async def _write(self) -> None:
        outbox = self.connection.outbox
        ended = False  # a fatal error frame went out: the client knows the session ended
        try:
            while items := await outbox.take():
                last = items[-1]
                ended = isinstance(last, Frame) and last.error.fatal
                await self._publish(json_frames(items))
            if outbox.code is not None and not ended:
                error = ss.Error(code=outbox.code.value[0], message=outbox.reason, fatal=True)
                await self._publish([to_json(Frame(error=error))])
        except (RedisError, OSError) as err:
            log.warning("redis edge: lost Redis while writing to %s: %s", self.out, err)

    async def _publish(self, out: list[str]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for frame in out:
                pipe.publish(self.out, frame)
            await pipe.execute()


class RedisSessions:
    """The Redis connections this node serves, by session id (the `<id>` of the channels)."""

    def __init__(self, hub: Hub, redis: aioredis.Redis, names: Names, ingress: Ingress) -> None:
        self.hub = hub
        self.redis = redis
        self.names = names
        self.ingress = ingress
        self.refused = 0
        self._connections: dict[str, RedisConnection] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._connections)

    def feed(self, session_id: str, data: bytes) -> None:
        conn = self._connections.get(session_id)
        if conn is None or conn.finished:
            try:
                check_id(session_id, "session id", self.hub.limits, required=True)
            except HubError as err:
                self.refused += 1
                log.warning("redis edge: ignored a session frame: %s", err)
                return
            conn = self._connections[session_id] = RedisConnection(
                self.hub, self.redis, self.names.session_out(session_id), session_id, self.ingress
            )
            task = asyncio.get_running_loop().create_task(self._run(session_id, conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        conn.feed(data)

    async def _run(self, session_id: str, conn: RedisConnection) -> None:
        try:
            await conn.run()
        except Exception:
            log.exception("redis edge: session %s failed", session_id)
        finally:
            if self._connections.get(session_id) is conn:
                del self._connections[session_id]

    async def close_all(self, reason: str) -> None:
        """End every connection (their sessions wait out the grace period for a resume)."""
        for conn in list(self._connections.values()):
            conn.close(reason)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
