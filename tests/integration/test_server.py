"""What stock gRPC tools rely on: health checking and server reflection."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from websockets.asyncio.client import connect

from agentplex.client import Client
from agentplex.node import HubNode
from tests.support.hubs import fast_settings


async def test_health_reports_serving_for_hub_and_each_service(client: Client) -> None:
    stub = health_pb2_grpc.HealthStub(client.channel)
    for service in ("", "agentplex.v1.MessagingService", "agentplex.v1.SessionService"):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.Check(health_pb2.HealthCheckRequest(service="nope.Service"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_every_service_and_describes_them(client: Client) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(client.channel)

    async def ask(**request: str) -> reflection_pb2.ServerReflectionResponse:
        call = stub.ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(**request))  # type: ignore[arg-type]
        reply = await call.read()
        await call.done_writing()
        return reply  # type: ignore[no-any-return]

    listed = await ask(list_services="")
    names = {s.name for s in listed.list_services_response.service}
    assert {
        "agentplex.v1.RegistryService",
        "agentplex.v1.MessagingService",
        "agentplex.v1.TaskService",
        "agentplex.v1.SessionService",
        "grpc.health.v1.Health",
    } <= names
    described = await ask(file_containing_symbol="agentplex.v1.SessionService")
    assert described.file_descriptor_response.file_descriptor_proto


async def test_the_websocket_port_binds_server_ws_host() -> None:
    """server.ws_host (the seed's WEBSOCKET_HOST) places the WebSocket port apart from gRPC."""
    settings = fast_settings(server={"host": "127.0.0.1", "ws_host": "127.0.0.2"})
    async with HubNode(settings) as node:
        assert node.ws_url.startswith("ws://127.0.0.2:")
        assert node.grpc_address.startswith("127.0.0.1:")
        async with connect(f"{node.ws_url}/v1/connect") as ws:
            await ws.send('{"ref": "h", "hello": {}}')
            assert "welcome" in await ws.recv()
