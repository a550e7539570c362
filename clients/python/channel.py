"""The gRPC channel to a hub: plain or TLS (optionally with a client certificate for mutual
TLS), with the bearer token sent as `authorization` metadata on every call."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

MAX_MESSAGE_BYTES = 8 * 1024 * 1024


def channel_options() -> list[tuple[str, int | str]]:
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 20_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
    ]


@dataclass(frozen=True, slots=True)
class Tls:
    """TLS to the hub. `ca_file` empty: the system's trusted roots. `cert_file` and `key_file`:
    a client certificate, for a hub that asks for one (mutual TLS)."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    # The name the server certificate must carry, when it is not the address's host.
    server_name: str = ""

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: str) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file),
            private_key=read(self.key_file),
            certificate_chain=read(self.cert_file),
        )


def default_token() -> str:
    return os.environ.get("AGENTPLEX_TOKEN", "")


class _Bearer(
    aio.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    aio.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
    aio.StreamUnaryClientInterceptor,  # type: ignore[type-arg]
    aio.StreamStreamClientInterceptor,  # type: ignore[type-arg]
):
    """Adds `authorization: Bearer <token>` to every call's metadata."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details: aio.ClientCallDetails) -> aio.ClientCallDetails:
        metadata = aio.Metadata(*(details.metadata or ()), self._header)
        return details._replace(metadata=metadata)  # type: ignore[attr-defined, no-any-return]

    async def _call(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(self._with_token(details), request)

    intercept_unary_unary = _call  # type: ignore[assignment]
    intercept_unary_stream = _call  # type: ignore[assignment]
    intercept_stream_unary = _call  # type: ignore[assignment]
    intercept_stream_stream = _call  # type: ignore[assignment]


def open_channel(address: str, *, token: str = "", tls: Tls | None = None) -> aio.Channel:
    options = channel_options()
    if tls is not None and tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    interceptors: Any = [_Bearer(token)] if token else None
    if tls is None:
        return aio.insecure_channel(address, options=options, interceptors=interceptors)
    return aio.secure_channel(
        address, tls.credentials(), options=options, interceptors=interceptors
    )
