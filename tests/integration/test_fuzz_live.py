"""Garbage against a live hub: hypothesis-made frames over WebSocket (text and binary, on JSON
and protobuf sessions) and messages on the Redis edge's ingress and session channels. Each
refusal is answered and the session goes on; afterwards the hub still serves, a JSON subscriber
still receives, and nothing accepted before was lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, Phase, example, given, settings, strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from agentplex.client import Client
from agentplex.config import Settings
from agentplex.edges.frames import Refused, parse_json_frame, parse_proto_frame
from agentplex.node import HubNode
from agentplex.v1 import envelope_pb2, session_service_pb2 as ss
from tests.conftest import ENGINES, engine_settings
from tests.support.fuzz import corrupted, json_values, messages, shaped, valid_messages
from tests.support.redis_edge import edge_hub, edge_of, unique_prefix, until
from tests.support.redis_server import RedisServer
from tests.support.streams import take

JSON, PROTO = "agentplex.v1.json", "agentplex.v1.proto"
KEPT = [b"one", b"two", b"three"]
# Few examples, each a burst of frames on fresh sessions of one live hub: a few hundred frames.
LIVE = settings(
    max_examples=8,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # shrinking against a live hub would take minutes
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(params=ENGINES)
def settings(request: pytest.FixtureRequest) -> Settings:
    # Garbage resets no heartbeat timer: a timeout longer than any test.
    session = {"heartbeat_interval": 1.0, "heartbeat_timeout": 30.0}
    return engine_settings(request, session=session)


channels = st.sampled_from(["fuzz.kept", "fuzz.x", "fuzz.*", "agent.nobody", "_sys.tasks", "no!"])


def on_channel(env: envelope_pb2.Envelope, channel: str) -> envelope_pb2.Envelope:
    env.channel = channel
    return env


def kinds(frame: ss.ConnectRequest) -> set[str | None]:
    """The frame's kind, and those of the frames a batch holds (at any depth)."""
    kind = frame.WhichOneof("frame")
    if kind != "batch":
        return {kind}
    return {kind}.union(*(kinds(inner) for inner in frame.batch.frames))


def no_submit(frame: ss.ConnectRequest) -> bool:
    return "submit_task" not in kinds(frame)


# Frames that decode, with values only protobuf can carry (times past 9999, enum numbers the
# schema lacks), on channels that exist. Without submit_task (alone or in a batch): a deadline
# JSON cannot write is still accepted (see the xfail in test_fuzz_validation) and its receipt
# would end a JSON session.
live_frames = st.one_of(
    st.builds(
        ss.ConnectRequest,
        ref=st.text(max_size=4),
        publish=st.builds(
            ss.Publish,
            envelopes=st.lists(st.builds(on_channel, messages(envelope_pb2.Envelope), channels)),
        ),
    ),
    st.builds(
        ss.ConnectRequest,
        subscribe=st.builds(
            ss.Subscribe, channels=st.lists(channels, max_size=2), ack=st.booleans()
        ),
    ),
    messages(ss.ConnectRequest).filter(no_submit),
)
seeds = valid_messages(ss.ConnectRequest).filter(no_submit)
text_frames = (
    st.text(max_size=50)
    | json_values.map(json.dumps)
    | shaped(ss.ConnectRequest.DESCRIPTOR).map(json.dumps)
)
binary_frames = (
    st.binary(max_size=50) | corrupted(seeds) | live_frames.map(lambda f: f.SerializeToString())
)
FAR_FUTURE = envelope_pb2.Envelope(channel="fuzz.x", created_at=Timestamp(seconds=2**62))
REGRESSIONS = [
    '{"ref": "\\ud800", "x": 1}',  # a ref no error frame could echo: the session stopped reading
    '{"publish": {"envelopes": "\\ud800"}}',  # so did a reason quoting a lone surrogate
    ss.ConnectRequest(publish=ss.Publish(envelopes=[FAR_FUTURE])).SerializeToString(),
]


def ends_session(data: str | bytes) -> bool:
    """A frame that says goodbye (or holds one): garbage may, but then its session is not
    there to check."""
    try:
        frame = parse_json_frame(data) if isinstance(data, str) else parse_proto_frame(data)
    except Refused:
        return False
    return "goodbye" in kinds(frame)


class Session:
    """A WebSocket session whose answers are read as they come."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[ss.ConnectResponse] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):  # the checks then see it has ended
            async for message in self.ws:
                if isinstance(message, bytes):
                    self.frames.append(ss.ConnectResponse.FromString(message))
                else:
                    self.frames.append(json_format.Parse(message, ss.ConnectResponse()))

    async def answered(self, ref: str) -> None:
        await self.seen(lambda f: f.ref == ref, f"an answer to {ref!r}")

    async def seen(self, match: Callable[[ss.ConnectResponse], bool], what: str) -> None:
        await until(lambda: any(map(match, self.frames)) or self.reader.done(), what=what)
        assert any(map(match, self.frames)), f"the session ended before {what}: {self.reader}"


@asynccontextmanager
async def session(node: HubNode, subprotocol: str) -> AsyncIterator[Session]:
    async with connect(f"{node.ws_url}/v1/connect", subprotocols=[subprotocol]) as ws:  # type: ignore[list-item]
        await ws.send('{"ref": "hello", "hello": {}}')
        opened = Session(ws)
        await opened.answered("hello")
        yield opened
        opened.reader.cancel()


async def publish_kept(client: Client) -> list[int]:
    results = [await client.publish("fuzz.kept", p, id=f"kept-{i}") for i, p in enumerate(KEPT)]
    return [r.position.seq for r in results]


async def assert_kept(client: Client, seqs: list[int]) -> None:
    stored = (await client.history("fuzz.kept", since=0, limit=len(KEPT))).envelopes
    assert [(e.position.seq, e.payload) for e in stored] == list(zip(seqs, KEPT, strict=True))


@LIVE
@given(
    frames=st.lists(text_frames | binary_frames, min_size=20, max_size=40).map(
        lambda fs: [f for f in fs if not ends_session(f)]
    )
)
@example(frames=REGRESSIONS)
async def test_websocket_garbage_is_answered_and_loses_nothing(
    node: HubNode, client: Client, frames: list[str | bytes]
) -> None:
    seqs = await publish_kept(client)  # a retry after the first example: stored once
    async with (
        session(node, JSON) as watcher,
        session(node, JSON) as text,
        session(node, PROTO) as binary,
    ):
        await watcher.ws.send('{"ref": "w", "subscribe": {"channels": ["fuzz.*"]}}')
        await watcher.answered("w")
        for i, data in enumerate(frames):  # both kinds of frame on both kinds of session
            await (text if i % 2 else binary).ws.send(data)
        final = '{"ref": "final", "publish": {"envelopes": [{"channel": "fuzz.after"}]}}'
        for garbage_taker in (text, binary):
            await garbage_taker.ws.send(final)
            await garbage_taker.answered("final")
        await client.publish("fuzz.after", "still up")
        await watcher.seen(
            lambda f: any(d.envelope.payload == b"still up" for d in f.deliveries.deliveries),
            "the JSON subscriber's delivery",
        )
    await assert_kept(client, seqs)


# Redis edge ------------------------------------------------------------------------------------

redis_data = (
    st.binary(max_size=60)
    | json_values.map(lambda v: json.dumps(v).encode())
    | shaped(envelope_pb2.Envelope.DESCRIPTOR).map(lambda v: json.dumps(v).encode())
    | shaped(ss.ConnectRequest.DESCRIPTOR).map(lambda v: json.dumps(v).encode())
)
redis_channels = channels.map(str.encode) | st.binary(max_size=20)
redis_messages = st.tuples(st.sampled_from(["pub:", "session:"]), redis_channels, redis_data)


@LIVE
@given(published=st.lists(redis_messages, min_size=20, max_size=40))
@example(published=[("pub:", b"fuzz.x", b'{"id": "\xff"}'), ("session:", b"s1", b'{"\xff')])
async def test_redis_garbage_is_refused_and_loses_nothing(
    private_redis: RedisServer, published: list[tuple[str, bytes, bytes]]
) -> None:
    prefix = unique_prefix()
    async with (
        edge_hub(private_redis.url, prefix, ingress="fuzz.*") as node,
        Client(node.grpc_address) as client,
        aioredis.Redis(host=private_redis.host, port=private_redis.port) as redis,
    ):
        seqs = await publish_kept(client)
        edge = edge_of(node)
        failures = Failures()
        logging.getLogger("agentplex.edges.redis").addHandler(failures)
        try:
            for family, name, data in published:
                suffix = b":in" if family == "session:" else b""
                await redis.publish(prefix.encode() + family.encode() + name + suffix, data)
            sent = sum(family == "pub:" for family, _, _ in published)
            await until(lambda: edge.ingress.accepted + edge.ingress.refused == sent)
            subscription = client.subscribe("fuzz.after")
            got = asyncio.create_task(take(subscription, 1))
            await asyncio.wait_for(subscription.ready.wait(), 5)
            await redis.publish(f"{prefix}pub:fuzz.after", b"still up")
            assert [e.payload for e in await asyncio.wait_for(got, 5)] == [b"still up"]
        finally:
            logging.getLogger("agentplex.edges.redis").removeHandler(failures)
        assert not failures.records, [r.getMessage() for r in failures.records]
        assert edge.ready
        await assert_kept(client, seqs)


class Failures(logging.Handler):
    """Errors the edge logged: its last line of defence caught something a decoder let through."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
