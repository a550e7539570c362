"""Authentication on every transport: each token defect is refused with UNAUTHENTICATED (an
error frame and close on WebSocket, an error frame on Redis) and audited; a good token works,
whether it comes in gRPC metadata, a WebSocket header or query parameter, or a hello frame."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from grpc import aio
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from agentplex.client import Client, HubError
from agentplex.node import HubNode
from agentplex.v1 import agent_pb2, session_service_pb2 as ss, session_service_pb2_grpc
from tests.support.auth import DEFECTS, auth_settings, defective, token
from tests.support.hubs import fast_settings
from tests.support.redis_edge import RedisAgent, edge_of, unique_prefix, until
from tests.support.redis_server import RedisServer
from tests.support.ws_sessions import answer

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED.value[0]


@pytest.fixture
async def node(private_redis: RedisServer) -> AsyncIterator[HubNode]:
    """A hub with auth on, the WebSocket edge and the Redis edge."""
    prefix = unique_prefix()
    settings = fast_settings(
        auth=auth_settings(),
        redis_edge={"enabled": True, "url": private_redis.url, "prefix": prefix},
        session={"heartbeat_interval": 1.0, "heartbeat_timeout": 30.0},
    )
    async with HubNode(settings) as running:
        await until(lambda: edge_of(running).ready, what="the redis edge")
        yield running


@pytest.fixture
def audited(caplog: pytest.LogCaptureFixture) -> Iterator[list[dict[str, Any]]]:
    """The audit events recorded while the test runs."""
    events: list[dict[str, Any]] = []
    with caplog.at_level(logging.INFO, logger="agentplex.audit"):
        yield events
    events.extend(r.audit for r in caplog.records if hasattr(r, "audit"))


def failures(records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    return [r.audit for r in records if getattr(r, "audit", {}).get("event") == "auth.failed"]


# gRPC ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("defect", list(DEFECTS))
async def test_grpc_calls_refuse_each_defect(
    node: HubNode, defect: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agentplex.audit")
    async with Client(node.grpc_address, token=defective(defect)) as client:
        with pytest.raises(HubError) as err:
            await client.publish("chat", "hi")
        assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert DEFECTS[defect][1] in err.value.message
        with pytest.raises(HubError) as err:  # a session stream too
            async with client.session(agent_pb2.AgentCard(id="alice")):
                pass
        assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
    (first, *_) = failures(caplog.records)
    assert first["transport"] == "grpc" and first["peer"].startswith("ipv")
    assert DEFECTS[defect][1] in first["reason"]
    async with Client(node.grpc_address, token=token()) as client:  # the hub is still fine
        assert (await client.publish("chat", "hi")).position.seq == 1


async def test_grpc_session_takes_the_token_from_its_hello(node: HubNode) -> None:
    async def first_answer(hello: ss.Hello) -> ss.ConnectResponse:
        async with aio.insecure_channel(node.grpc_address) as channel:
            stub = session_service_pb2_grpc.SessionServiceStub(channel)
            call = stub.Connect(iter([ss.ConnectRequest(ref="h", hello=hello)]))
            async for response in call:
                return response
        raise AssertionError("no answer")

    welcome = await first_answer(ss.Hello(token=token("alice"), card={"id": "alice"}))
    assert welcome.welcome.agent_id == "alice"
    refused = await first_answer(ss.Hello(token=defective("expired")))
    assert (refused.ref, refused.error.code, refused.error.fatal) == ("h", UNAUTHENTICATED, True)
    assert "expired" in refused.error.message


# WebSocket ----------------------------------------------------------------------------------


@pytest.mark.parametrize("defect", list(DEFECTS))
@pytest.mark.parametrize("where", ["header", "query", "hello"])
async def test_websocket_refuses_each_defect(
    node: HubNode, defect: str, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agentplex.audit")
    bad = defective(defect)
    url, headers, hello = f"{node.ws_url}/v1/connect", {}, {}
    if where == "header" and bad:
        headers = {"Authorization": f"Bearer {bad}"}
    elif where == "query" and bad:
        url += f"?token={bad}"
    elif bad:
        hello = {"token": bad}
    async with connect(url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"ref": "h", "hello": hello}))
        refused = await answer(ws, "h")
        error = refused["error"]
        assert (error["code"], error["fatal"]) == ("ERROR_CODE_UNAUTHENTICATED", True)
        assert DEFECTS[defect][1] in refused["error"]["message"]
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    (failure,) = failures(caplog.records)
    assert failure["transport"] == "websocket" and failure["peer"].startswith("127.0.0.1:")


@pytest.mark.parametrize("where", ["header", "query", "hello"])
async def test_websocket_accepts_a_good_token(node: HubNode, where: str) -> None:
    good = token("bob", "agent subscribe:*")
    url = f"{node.ws_url}/v1/connect" + (f"?token={good}" if where == "query" else "")
    headers = {"Authorization": f"Bearer {good}"} if where == "header" else {}
    hello: dict[str, Any] = {"card": {"id": "bob"}}
    if where == "hello":
        hello["token"] = good
    async with connect(url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"ref": "h", "hello": hello}))
        welcome = await answer(ws, "h")
        assert welcome["welcome"]["agentId"] == "bob"
        await ws.send(json.dumps({"ref": "p", "publish": {"envelopes": [{"channel": "x"}]}}))
        denied = await answer(ws, "p")  # bob may not publish: a scope matter, not auth
        assert denied["error"]["code"] == "ERROR_CODE_PERMISSION_DENIED"


# Redis sessions -----------------------------------------------------------------------------


@pytest.mark.parametrize("defect", list(DEFECTS))
async def test_redis_sessions_refuse_each_defect(
    node: HubNode, private_redis: RedisServer, defect: str
) -> None:
    prefix = node.settings.redis_edge.prefix
    async with (
        aioredis.Redis(host=private_redis.host, port=private_redis.port) as redis,
        RedisAgent(redis, prefix, f"bad-{defect}") as agent,
    ):
        await agent.send("h", hello={"token": defective(defect)})
        refused = await agent.answer("h")
        assert refused.error.code == UNAUTHENTICATED and refused.error.fatal
        assert DEFECTS[defect][1] in refused.error.message


async def test_redis_session_with_a_good_token(node: HubNode, private_redis: RedisServer) -> None:
    prefix = node.settings.redis_edge.prefix
    async with (
        aioredis.Redis(host=private_redis.host, port=private_redis.port) as redis,
        RedisAgent(redis, prefix, "good") as agent,
    ):
        await agent.send("h", hello={"token": token("carol"), "card": {"id": "carol"}})
        welcome = await agent.read_kind("welcome")
        assert welcome.welcome.agent_id == "carol"
        async with Client(node.grpc_address, token=token("admin", "admin")) as admin:
            registered = await admin.get_agent("carol")
        assert (registered.owner, registered.transport) == ("carol", agent_pb2.TRANSPORT_REDIS)


async def test_redis_ingress_and_sessions_stay_within_the_allow_list(
    private_redis: RedisServer,
) -> None:
    """With auth on, a plain Redis PUBLISH on `pub:` acts with the allow-list as its only
    grant, and a Redis session publishes within it on top of its token's scopes."""
    prefix = unique_prefix()
    settings = fast_settings(
        auth=auth_settings(),
        redis_edge={
            "enabled": True,
            "url": private_redis.url,
            "prefix": prefix,
            "ingress": "chat.*",
        },
    )
    async with (
        HubNode(settings) as node,
        aioredis.Redis(host=private_redis.host, port=private_redis.port) as redis,
        RedisAgent(redis, prefix, "writer") as agent,
        Client(node.grpc_address, token=token("root", "admin")) as admin,
    ):
        await until(lambda: edge_of(node).ready, what="the redis edge")
        await redis.publish(f"{prefix}pub:chat.room", "from redis")
        await redis.publish(f"{prefix}pub:secret", "not allowed")
        await until(lambda: edge_of(node).ingress.refused == 1, what="the refusal")
        await until(lambda: edge_of(node).ingress.accepted == 1, what="the accepted publish")
        (accepted,) = (await admin.history("chat.room")).envelopes
        assert (accepted.payload, accepted.sender) == (b"from redis", "redis-ingress")
        assert not (await admin.history("secret")).envelopes

        await agent.send("h", hello={"token": token("writer", "publish:*")})
        assert (await agent.read_kind("welcome")).ref == "h"
        await agent.send("p", publish={"envelopes": [{"channel": "news", "payload": "eA=="}]})
        refused = await agent.answer("p")
        assert "redis_edge.ingress" in refused.error.message
        await agent.send("q", publish={"envelopes": [{"channel": "chat.x", "payload": "eA=="}]})
        assert (await agent.answer("q")).receipt.published[0].position.seq == 1
