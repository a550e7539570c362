"""A controlled environment for settings tests: no AGENTPLEX_*, seed or dynaconf variable of the
caller's shell leaks in, and `production_ready` supplies what production demands.

Use the fixtures by importing them into a test module (`clean_environment` is autouse there)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from agentplex.config import ConfigError, load_settings

# The seed's variable names (service/config/seed.py), plus ENVIRONMENT and DEBUG.
SEED_NAMES = [
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "REDIS_SSL",
    "WEBSOCKET_HOST",
    "WEBSOCKET_PORT",
    "WEBSOCKET_SSL_ENABLED",
    "WEBSOCKET_SSL_CERTFILE",
    "WEBSOCKET_SSL_KEYFILE",
    "JWT_SECRET_KEY",
    "API_KEY_REQUIRED",
    "RATE_LIMIT_ENABLED",
    "CLAUDE_CLI_PATH",
    "CURSOR_CLI_PATH",
    "GH_CLI_PATH",
    "GEMINI_CLI_PATH",
    "ENVIRONMENT",
    "DEBUG",
]
STRONG_SECRET = "k7Gq2v9Xw4Lm8Np3Rs6Tu1Yz5Ab0Cd2Ef"


def is_settings_variable(name: str) -> bool:
    upper = name.upper()
    return upper.startswith("AGENTPLEX") or upper.endswith("_FOR_DYNACONF") or upper in SEED_NAMES


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ less every settings variable, plus `extra`: the environment of a subprocess."""
    env = {name: value for name, value in os.environ.items() if not is_settings_variable(name)}
    env.update(extra or {})
    return env


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AGENTPLEX_*, seed or dynaconf variables from the caller's shell leak into these
    tests."""
    for name in list(os.environ):
        if is_settings_variable(name):
            monkeypatch.delenv(name)


@pytest.fixture
def production_ready(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """What production demands: a strong JWT secret and TLS on both ports."""
    monkeypatch.setenv("AGENTPLEX_AUTH__JWT_SECRET", STRONG_SECRET)
    for port in ("GRPC", "WS"):
        for part in ("CERT", "KEY"):
            path = tmp_path / f"{port}-{part}.pem".lower()
            path.write_text("placeholder: validation checks that the file exists")
            monkeypatch.setenv(f"AGENTPLEX_TLS__{port}_{part}_FILE", str(path))


def refused(*fragments: str, env: str | None = None) -> str:
    """The message of the ConfigError loading the settings raises; it must hold `fragments`."""
    with pytest.raises(ConfigError) as err:
        load_settings(env)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message
