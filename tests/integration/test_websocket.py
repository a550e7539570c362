"""The WebSocket edge over real sockets (the `websockets` client): the same session protocol as
gRPC's Connect, in JSON (text frames) or protobuf (binary frames), on both engines."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from google.protobuf import json_format
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from agentplex.client import Client, envelope
from agentplex.config import Settings
from agentplex.node import HubNode
from agentplex.v1 import agent_pb2, envelope_pb2, session_service_pb2 as ss, task_pb2
from tests.conftest import ENGINES, engine_settings
from tests.integration.test_sessions import has_status
from tests.support.hubs import fast_settings
from tests.support.streams import take, until
from tests.support.ws_sessions import answer

JSON, PROTO = "agentplex.v1.json", "agentplex.v1.proto"


@pytest.fixture(params=ENGINES)
def settings(request: pytest.FixtureRequest) -> Settings:
    # Sessions here send no heartbeats: a timeout longer than any test. A short ack timeout, so
    # redelivery of what an agent left unacknowledged shows within seconds.
    session = {"heartbeat_interval": 1.0, "heartbeat_timeout": 30.0, "ack_timeout": 0.5}
    return engine_settings(
        request, limits={"session_queue": 2000, "max_batch": 100}, session=session
    )


class Peer:
    """A WebSocket session speaking one encoding; frames in and out are protobuf messages."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.proto = ws.subprotocol == PROTO
        self.refs = 0

    async def send(self, **frame: Any) -> str:
        self.refs += 1
        ref = str(self.refs)
        message = ss.ConnectRequest(ref=ref, **frame)
        data = message.SerializeToString() if self.proto else json_format.MessageToJson(message)
        await self.ws.send(data)
        return ref

    async def read(self, timeout: float = 5) -> ss.ConnectResponse:
        data = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(data, bytes) == self.proto, "the hub answers in the negotiated encoding"
        if self.proto:
            return ss.ConnectResponse.FromString(data)  # type: ignore[arg-type]
        return json_format.Parse(data, ss.ConnectResponse())

    async def read_kind(self, kind: str, timeout: float = 5) -> ss.ConnectResponse:
        while True:
            frame = await self.read(timeout)
            if frame.WhichOneof("frame") == kind:
                return frame
            assert frame.WhichOneof("frame") in ("ping", "receipt", "deliveries"), frame

    async def deliveries(self, count: int) -> list[ss.Delivery]:
        out: list[ss.Delivery] = []
        while len(out) < count:
            out.extend((await self.read_kind("deliveries")).deliveries.deliveries)
        return out


@pytest.fixture
async def open_peer(node: HubNode) -> AsyncIterator[Any]:
    opened: list[ClientConnection] = []

    async def open_(subprotocol: str = JSON, **card: Any) -> Peer:
        ws = await connect(f"{node.ws_url}/v1/connect", subprotocols=[subprotocol])  # type: ignore[list-item]
        opened.append(ws)
        peer = Peer(ws)
        await peer.send(hello=ss.Hello(card=card or None))
        await peer.read_kind("welcome")
        return peer

    yield open_
    for ws in opened:
        await ws.close()


@pytest.mark.parametrize("subprotocol", [JSON, PROTO])
async def test_grpc_publisher_and_websocket_subscriber_agree(
    open_peer: Any, client: Client, subprotocol: str
) -> None:
    peer = await open_peer(subprotocol)
    await peer.send(subscribe=ss.Subscribe(channels=["mixed.*"]))
    await peer.read_kind("receipt")
    results = [await client.publish("mixed.a", f"m{i}") for i in range(3)]
    got = await peer.deliveries(3)
    assert [d.envelope.payload for d in got] == [b"m0", b"m1", b"m2"]
    assert [(d.envelope.position.seq, d.envelope.position.epoch) for d in got] == [
        (r.position.seq, r.position.epoch) for r in results
    ]


@pytest.mark.parametrize("subprotocol", [JSON, PROTO])
async def test_websocket_publisher_and_grpc_subscriber_agree(
    open_peer: Any, client: Client, subprotocol: str
) -> None:
    sub = client.subscribe("ws.out")
    reading = asyncio.create_task(take(sub, 2))
    await asyncio.wait_for(sub.ready.wait(), 5)
    peer = await open_peer(subprotocol)
    envs = [{"channel": "ws.out", "payload": p} for p in (b"x", b"y")]
    await peer.send(publish=ss.Publish(envelopes=envs))
    receipt = (await peer.read_kind("receipt")).receipt
    got = await reading
    assert [e.payload for e in got] == [b"x", b"y"]
    assert [e.position.seq for e in got] == [p.position.seq for p in receipt.published]


async def test_raw_json_text_frames_as_a_browser_sends_them(node: HubNode, client: Client) -> None:
    async with connect(f"{node.ws_url}/v1/connect") as ws:  # no subprotocol: JSON
        assert [e.name for e in ws.protocol.extensions] == ["permessage-deflate"]
        await ws.send('{"ref": "h", "hello": {"card": {"id": "browser"}}}')
        welcome = await answer(ws, "h")
        assert welcome["ref"] == "h" and welcome["welcome"]["agentId"] == "browser"
        payload = base64.b64encode(b"hi").decode()
        await ws.send(json.dumps({"ref": "p", "publish": {"envelopes": [
            {"channel": "plain", "payload": payload}]}}))  # fmt: skip
        receipt = await answer(ws, "p")
        assert (
            receipt["ref"] == "p" and receipt["receipt"]["published"][0]["position"]["seq"] == "1"
        )
        # Several frames in one message, as the session protocol allows: each answered alone.
        await ws.send(json.dumps({"batch": {"frames": [
            {"ref": "b1", "publish": {"envelopes": [{"channel": "plain"}]}},
            {"ref": "b2", "heartbeat": {}}]}}))  # fmt: skip
        assert "receipt" in await answer(ws, "b1") and "receipt" in await answer(ws, "b2")
    assert (await client.history("plain")).envelopes[0].payload == b"hi"


async def test_tokens_are_accepted_unchecked_while_auth_is_off(node: HubNode) -> None:
    """A token in the Authorization header, the `token` query parameter or the hello is not
    checked while auth.enabled is false (the default): the session opens either way."""
    assert not node.settings.auth.enabled
    url = f"{node.ws_url}/v1/connect"
    for where, target, headers, hello in (
        ("header", url, {"Authorization": "Bearer not-a-jwt"}, {}),
        ("query", f"{url}?token=not-a-jwt", {}, {}),
        ("hello", url, {}, {"token": "not-a-jwt"}),
    ):
        async with connect(target, additional_headers=headers) as ws:
            await ws.send(json.dumps({"ref": "h", "hello": {"card": {"id": where}, **hello}}))
            welcome = await answer(ws, "h")
            assert welcome["welcome"]["agentId"] == where, (where, welcome)


async def test_bad_frames_get_errors_and_the_hub_stays_up(node: HubNode, client: Client) -> None:
    async with connect(f"{node.ws_url}/v1/connect", subprotocols=[JSON]) as ws:  # type: ignore[list-item]
        await ws.send('{"ref": "h", "hello": {}}')
        await answer(ws, "h")
        for bad, ref in (
            ("not json", ""),
            ('{"ref": "r1", "publsh": {}}', "r1"),  # an unknown field
            (b"\xff\xfe\x00garbage", ""),  # binary that is no ConnectRequest
            ('{"ref": "r2", "publish": {"envelopes": [{"channel": "bad name!"}]}}', "r2"),
        ):
            await ws.send(bad)
            error = await answer(ws, ref)
            assert error.get("ref", "") == ref and error["error"]["message"], error
            assert not error["error"].get("fatal")
        await ws.send('{"ref": "ok", "publish": {"envelopes": [{"channel": "fine"}]}}')
        assert "receipt" in await answer(ws, "ok")
    assert len((await client.history("fine")).envelopes) == 1


async def test_a_frame_before_hello_or_too_large_closes_with_a_reason(
    node: HubNode, client: Client
) -> None:
    async with connect(f"{node.ws_url}/v1/connect") as ws:
        await ws.send('{"ref": "x", "publish": {}}')
        error = await answer(ws, "x")
        assert error["error"]["fatal"] and "hello" in error["error"]["message"]
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code in (1007, 1008)
    huge = node.settings.server.max_message_bytes + 1
    async with connect(f"{node.ws_url}/v1/connect", max_size=None) as ws:
        await ws.send("x" * huge)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    await client.publish("still.up", "yes")


async def test_resume_after_a_drop_misses_nothing_and_repeats_nothing(
    node: HubNode, client: Client
) -> None:
    url = f"{node.ws_url}/v1/connect"
    ws = await connect(url, subprotocols=[PROTO])  # type: ignore[list-item]
    peer = Peer(ws)
    await peer.send(hello=ss.Hello(card={"id": "roamer"}))
    token = (await peer.read_kind("welcome")).welcome.resume_token
    await peer.send(subscribe=ss.Subscribe(channels=["feed"]))
    await peer.read_kind("receipt")
    for i in range(3):
        await client.publish("feed", f"{i}")
    first = await peer.deliveries(3)
    ws.transport.abort()  # the network drops: no close frame
    for i in range(3, 6):
        await client.publish("feed", f"{i}")
    async with connect(url, subprotocols=[PROTO]) as ws2:  # type: ignore[list-item]
        again = Peer(ws2)
        last = first[-1].envelope.position
        position = {"channel": "feed", "position": last}
        await again.send(hello=ss.Hello(resume_token=token, positions=[position]))
        welcome = (await again.read_kind("welcome")).welcome
        assert welcome.resumed
        for i in range(6, 8):
            await client.publish("feed", f"{i}")
        rest = await again.deliveries(5)
        assert [d.envelope.payload for d in first + rest] == [str(i).encode() for i in range(8)]


async def test_a_slow_consumer_is_closed_while_others_go_on(
    node: HubNode, client: Client, open_peer: Any
) -> None:
    healthy = await open_peer()
    await healthy.send(subscribe=ss.Subscribe(channels=["flood"]))
    await healthy.read_kind("receipt")
    async with connect(
        f"{node.ws_url}/v1/connect",
        subprotocols=[JSON],
        max_queue=1,  # type: ignore[list-item]
    ) as slow:
        await slow.send('{"ref": "h", "hello": {}}')
        await slow.recv()
        await slow.send('{"ref": "s", "subscribe": {"channels": ["flood"]}}')
        await slow.recv()
        sent = 0
        closed = None
        while closed is None and sent < 20_000:  # the slow one reads nothing meanwhile
            await client.publish_batch(
                # Incompressible: permessage-deflate would shrink repeated bytes to nothing.
                [envelope("flood", os.urandom(1000)) for _ in range(100)]
            )
            sent += 100
            await healthy.deliveries(100)
            closed = slow.close_code if slow.state is websockets.State.CLOSED else None
            await asyncio.sleep(0)
        with pytest.raises(ConnectionClosed) as ended:
            while True:
                await asyncio.wait_for(slow.recv(), 5)
        assert ended.value.rcvd is not None and ended.value.rcvd.code == 1008
        assert "too slow" in ended.value.rcvd.reason


async def test_an_agent_over_websocket_does_a_task(open_peer: Any, client: Client) -> None:
    agent = await open_peer(id="ws-agent", capabilities=["browser"])
    handle = await client.submit("render", require=["browser"])
    assignment = (await agent.read_kind("task_assignment")).task_assignment
    assert assignment.task.input.data == b"render"
    task_id, attempt = assignment.task.id, assignment.attempt
    await agent.send(task_update=ss.TaskUpdate(task_id=task_id, attempt=attempt, accept={}))
    result = task_pb2.Payload(data=b"rendered")
    await agent.send(task_update=ss.TaskUpdate(task_id=task_id, attempt=attempt, result=result))
    assert (await handle.result()).data == b"rendered"


@pytest.mark.parametrize("subprotocol", [JSON, PROTO])
async def test_an_acked_inbox_message_comes_once_and_an_unacked_one_again(
    open_peer: Any, client: Client, subprotocol: str
) -> None:
    """An agent's inbox wants acks: an acked direct message is not delivered again, one left
    unacked comes back after each `session.ack_timeout` (0.5 s here), the same envelope at the
    same position with attempt 2, 3, ..."""
    agent = await open_peer(subprotocol, id="ws-acker")
    acked = await client.publish("agent.ws-acker", "ack me")
    left = await client.publish("agent.ws-acker", "leave me")
    first = await agent.deliveries(2)
    assert [(d.envelope.payload, d.attempt) for d in first] == [(b"ack me", 1), (b"leave me", 1)]
    assert [d.envelope.id for d in first] == [acked.id, left.id]
    position = envelope_pb2.ChannelPosition(
        channel="agent.ws-acker", position=first[0].envelope.position
    )
    await agent.send(ack=ss.Ack(positions=[position]))
    again: list[ss.Delivery] = []

    async def redelivered() -> None:
        while not again or again[-1].attempt < 4:  # three ack timeouts after the first delivery
            again.extend(await agent.deliveries(1))

    await asyncio.wait_for(redelivered(), 5)  # pings come meanwhile: bound the whole wait
    assert [d.attempt for d in again] == [2, 3, 4], "only the unacked one, once per timeout"
    for delivery in again:
        assert delivery.envelope == first[1].envelope
        assert (delivery.envelope.id, delivery.envelope.position) == (left.id, left.position)


async def test_a_dead_peer_is_noticed_by_keepalive() -> None:
    """A client that stops reading (so answers no ping and sends no frame) is dropped after the
    timeout, and its agent goes OFFLINE for the grace period, as with any dropped session."""
    session = {"heartbeat_interval": 0.2, "heartbeat_timeout": 0.6, "grace_period": 30.0}
    async with HubNode(fast_settings(session=session)) as hub, Client(hub.grpc_address) as grpc:
        ws = await connect(f"{hub.ws_url}/v1/connect", ping_interval=None)
        await ws.send('{"ref": "h", "hello": {"card": {"id": "ghost"}}}')
        await answer(ws, "h")
        ws.transport.pause_reading()  # alive at the TCP level, deaf to pings
        offline = agent_pb2.AGENT_STATUS_OFFLINE
        await until(lambda: has_status(grpc, "ghost", offline), timeout=10)
        ws.transport.abort()


async def test_a_websocket_session_submits_a_task_and_follows_it_on_sys_tasks(
    open_peer: Any, client: Client
) -> None:
    async def work(task: Any) -> str:
        return f"done: {task.input.data.decode()}"

    async with client.session(agent_pb2.AgentCard(id="worker", capabilities=["w"])) as agent:
        agent.on_task(work)
        peer = await open_peer(PROTO)
        await peer.send(subscribe=ss.Subscribe(channels=["_sys.tasks"]))
        await peer.read_kind("receipt")
        task = task_pb2.Task(required_capabilities=["w"], idempotency_key="once")
        task.input.data = b"from a browser"
        ref = await peer.send(submit_task=ss.SubmitTask(task=task))
        receipt = await peer.read_kind("receipt")
        assert receipt.ref == ref and receipt.receipt.task.id
        task_id = receipt.receipt.task.id
        while True:
            for delivery in await peer.deliveries(1):
                event = task_pb2.TaskEvent.FromString(delivery.envelope.payload)
                if event.task.id == task_id and event.task.state == task_pb2.TASK_STATE_COMPLETED:
                    assert event.task.result.data == b"done: from a browser"
                    break
            else:
                continue
            break
        again = await peer.send(submit_task=ss.SubmitTask(task=task))  # the same key: same task
        while (answer := await peer.read_kind("receipt")).ref != again:
            pass
        assert answer.receipt.task.id == task_id
        await peer.send(submit_task=ss.SubmitTask(task=task_pb2.Task(max_attempts=999)))
        error = await peer.read_kind("error")
        assert (
            error.error.code == ss.ERROR_CODE_INVALID_ARGUMENT
            and "max_attempts" in error.error.message
        )
