"""Certificates for testing Redis over TLS: a throwaway CA, a server certificate for 127.0.0.1
and a client certificate, made with the `openssl` command line (no Python crypto package
needed), and the settings that hand them to redis-server and to the hub."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


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
    """Make the CA and both certificates in `folder`; skips the test when openssl is missing."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    ca_key, ca_crt, ext = (str(folder / name) for name in ("ca.key", "ca.crt", "ext.cnf"))
    Path(ext).write_text("subjectAltName=IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
        "-keyout", ca_key, "-out", ca_crt)  # fmt: skip
    made: dict[str, tuple[str, str]] = {}
    for name in ("server", "client"):
        key, csr, crt = (str(folder / f"{name}.{ext}") for ext in ("key", "csr", "crt"))
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", key, "-out", csr)  # fmt: skip
        run("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
            "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", crt)  # fmt: skip
        made[name] = (crt, key)
    return TlsFiles(ca_crt, *made["server"], *made["client"])
