"""The hub's side of TLS, per port, from the `tls.*` files: an SSLContext for the WebSocket
port, credentials for the gRPC port. Files that do not load stop the start with an error naming
the settings; gRPC alone would only say that the port could not be added."""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc

from agentplex.config import TlsSettings


def server_context(tls: TlsSettings, port: str) -> ssl.SSLContext:
    """A server context with tls.<port>_cert_file and tls.<port>_key_file (port: grpc or ws)."""
    cert, key = getattr(tls, f"{port}_cert_file"), getattr(tls, f"{port}_key_file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except OSError as err:  # ssl.SSLError included: not PEM, or the key of another certificate
        raise OSError(
            f"cannot load tls.{port}_cert_file {cert} with tls.{port}_key_file {key}: {err}"
        ) from None
    return context


def grpc_credentials(tls: TlsSettings) -> grpc.ServerCredentials:
    """The gRPC port's certificate and key; with tls.grpc_client_ca_file, a client must present
    a certificate that CA signed or its handshake fails (mutual TLS)."""
    context = server_context(tls, "grpc")  # only to check the files, with a clear error
    client_ca = None
    if tls.grpc_client_ca_file:
        try:
            context.load_verify_locations(tls.grpc_client_ca_file)
        except OSError as err:
            raise OSError(
                f"cannot load tls.grpc_client_ca_file {tls.grpc_client_ca_file}: {err}"
            ) from None
        client_ca = Path(tls.grpc_client_ca_file).read_bytes()
    return grpc.ssl_server_credentials(
        [(Path(tls.grpc_key_file).read_bytes(), Path(tls.grpc_cert_file).read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )
