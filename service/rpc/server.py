"""The gRPC server: the four agentplex services plus health checking and reflection, in
plain text or over TLS (mutual TLS with tls.grpc_client_ca_file)."""

from __future__ import annotations

from typing import Any

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from agentplex.hub import Hub
from agentplex.rpc.handlers import generic_handler
from agentplex.rpc.messaging import MessagingServicer
from agentplex.rpc.registry import RegistryServicer
from agentplex.rpc.session import SessionServicer
from agentplex.rpc.tasks import TaskServicer
from agentplex.security.tls import grpc_credentials
from agentplex.v1 import (
    messaging_service_pb2,
    registry_service_pb2,
    session_service_pb2,
    task_service_pb2,
)

SERVICES: dict[str, tuple[Any, Any]] = {
    "RegistryService": (registry_service_pb2, RegistryServicer),
    "MessagingService": (messaging_service_pb2, MessagingServicer),
    "SessionService": (session_service_pb2, SessionServicer),
    "TaskService": (task_service_pb2, TaskServicer),
}


def grpc_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """Sizes and keepalive; no SO_REUSEPORT, so a second hub on a taken port fails loudly."""
    return [
        ("grpc.so_reuseport", 0),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 20_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
    ]


class GrpcServer:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.server = aio.server(options=grpc_options(hub.settings.server.max_message_bytes))
        names = []
        for name, (module, servicer_type) in SERVICES.items():
            descriptor = module.DESCRIPTOR.services_by_name[name]
            servicer = servicer_type(hub)
            self.server.add_generic_rpc_handlers([generic_handler(descriptor, servicer, hub.auth)])
            names.append(descriptor.full_name)
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names.append(health_pb2.DESCRIPTOR.services_by_name["Health"].full_name)
        reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], self.server)
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        tls = self.hub.settings.tls
        address = f"{host}:{port}"
        try:
            if tls.grpc:
                self.port = self.server.add_secure_port(address, grpc_credentials(tls))
            else:
                self.port = self.server.add_insecure_port(address)
        except RuntimeError:
            self.port = 0
        if not self.port:
            raise OSError(
                f"cannot bind gRPC on {host}:{port}: the address is taken or not local "
                "(--host/--grpc-port, server.host/server.grpc_port)"
            )
        await self.server.start()
        await self.set_serving(True)
        return self.port

    async def set_serving(self, serving: bool) -> None:
        """What the health service reports for the hub and each of its services."""
        status = health_pb2.HealthCheckResponse
        for service in ("", *(f"agentplex.v1.{name}" for name in SERVICES)):
            await self.health.set(service, status.SERVING if serving else status.NOT_SERVING)

    async def stop(self, grace: float = 2.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
