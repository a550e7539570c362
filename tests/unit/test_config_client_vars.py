"""The clients' variables share the AGENTPLEX_ prefix but are no settings: a shell that exports
them for the CLI can still start a hub or mint a token."""

from __future__ import annotations

import pytest

from agentplex.config import load_settings


def test_client_variables_are_not_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_HUB", "127.0.0.1:1")
    monkeypatch.setenv("AGENTPLEX_TOKEN", "eyJ.x.y")
    monkeypatch.setenv("AGENTPLEX_TLS_CA", "/nowhere/ca.pem")
    assert load_settings("development").server.grpc_port == 50051
    monkeypatch.setenv("AGENTPLEX_HUBB", "typo")
    with pytest.raises(ValueError, match="unknown setting section 'hubb'"):
        load_settings("development")
