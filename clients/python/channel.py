"""The gRPC channel to a hub: plain or TLS (optionally with a client certificate for mutual
TLS); the bearer token goes as `authorization` metadata on every call (passed per call, as an
interceptor would cost every streamed message a wrapper)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...] | None:
    """The metadata that carries `token` on a call (None: no token, no metadata)."""
    if token and not (token.isascii() and token.isprintable()):
        raise ValueError(
            "the token must be printable ASCII (a JWT is): check --token or AGENTPLEX_TOKEN"
        )
    return (("authorization", f"Bearer {token}"),) if token else None


def open_channel(address: str, tls: Tls | None = None) -> aio.Channel:
    options = channel_options()
    if tls is not None and tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    if tls is None:
        return aio.insecure_channel(address, options=options)
    return aio.secure_channel(address, tls.credentials(), options=options)
