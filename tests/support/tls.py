"""Certificates for testing Redis over TLS (a throwaway CA, a server certificate for 127.0.0.1
and a client certificate, from certs.py) and the settings that hand them to redis-server and
to the hub."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.certs import make_certs


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files in one folder. The server requires a client certificate signed by `ca`."""

    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str

    def server_args(self) -> list[str]:
        """redis-server options for its TLS port (the port itself is the caller's)."""
        return ["--tls-cert-file", self.server_cert, "--tls-key-file", self.server_key,
                "--tls-ca-cert-file", self.ca, "--tls-auth-clients", "yes"]  # fmt: skip

    def client_options(self) -> dict[str, Any]:
        """redis-py connection options for a client that presents the client certificate."""
        return {
            "ssl": True,
            "ssl_ca_certs": self.ca,
            "ssl_certfile": self.client_cert,
            "ssl_keyfile": self.client_key,
        }

    def engine_settings(self) -> dict[str, str]:
        """The `engine.redis_tls_*` settings for a hub that presents the client certificate."""
        return {
            "redis_tls_ca_file": self.ca,
            "redis_tls_cert_file": self.client_cert,
            "redis_tls_key_file": self.client_key,
        }


def certificates(folder: Path) -> TlsFiles:
    """Make the CA and both certificates in `folder`."""
    certs = make_certs(folder)
    return TlsFiles(
        certs.ca, certs.server.cert, certs.server.key, certs.client.cert, certs.client.key
    )
