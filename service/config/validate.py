"""Checks on the effective settings at start, each naming the setting to change. Production
refuses what would leave the hub open: auth off, a weak JWT secret, TLS off, any origin."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
from pathlib import Path
from typing import Any

from agentplex.config.sections import Settings
from agentplex.core.origins import Origins
from agentplex.core.validation import valid_id

WEAK_SECRETS = frozenset(
    {"secret", "changeme", "change-me", "change_me", "your-secret-key", "jwt-secret", "default"}
)
MIN_SECRET_LENGTH = 32
ALGORITHMS = ("HS256", "RS256", "ES256")


class ConfigError(ValueError):
    """A setting is missing, unknown or out of range; the message names it."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate(s: Settings) -> None:
    _ranges(s)
    _engine(s)
    _security(s)
    if s.env == "production":
        _production(s)


def _positive(section: str, obj: Any, *, allow_zero: tuple[str, ...] = ()) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if numeric and (value < 0 or (value == 0 and f.name not in allow_zero)):
            raise ConfigError(f"setting {section}.{f.name} must be positive, got {value}")


def _ranges(s: Settings) -> None:
    _positive("server", s.server, allow_zero=("grpc_port", "ws_port"))
    for port_name in ("grpc_port", "ws_port"):
        if getattr(s.server, port_name) > 65535:
            raise ConfigError(f"setting server.{port_name} must be 0 to 65535")
    for name in ("engine", "channels", "session", "tasks", "limits", "auth", "rate_limits"):
        _positive(name, getattr(s, name))
    _positive("agents", s.agents)
    for kind, settings in s.agents.kinds.items():
        _positive(f"agents.{kind}", settings)
    if s.tasks.default_max_attempts > s.tasks.max_attempts:
        raise ConfigError("setting tasks.default_max_attempts must not exceed tasks.max_attempts")
    if s.limits.session_queue < s.limits.max_batch:
        raise ConfigError(
            "setting limits.session_queue must be at least limits.max_batch, or one accepted "
            "batch would overflow every subscriber"
        )
    if s.session.heartbeat_timeout <= s.session.heartbeat_interval:
        raise ConfigError(
            "setting session.heartbeat_timeout must be larger than session.heartbeat_interval"
        )
    node_id = s.server.node_id
    if node_id and not valid_id(node_id, s.limits):
        # Other nodes read it back from what this node publishes (space-separated, in keys).
        raise ConfigError(
            f"setting server.node_id must be 1 to {s.limits.max_id_length} characters of "
            f"A-Z a-z 0-9 _ . : - (limits.max_id_length), got {node_id[:50]!r}"
        )
    if s.logging.format not in ("text", "json"):
        raise ConfigError(f"setting logging.format must be text or json, got {s.logging.format!r}")
    if not isinstance(logging.getLevelName(s.logging.level.upper()), int):
        raise ConfigError(
            f"setting logging.level must be DEBUG, INFO, WARNING or ERROR, got {s.logging.level!r}"
        )


def _engine(s: Settings) -> None:
    if s.engine.name not in ("memory", "redis"):
        raise ConfigError(f"setting engine.name must be memory or redis, got {s.engine.name!r}")
    if s.engine.name == "redis" and not s.engine.redis_url:
        raise ConfigError("setting engine.redis_url is required when engine.name is redis")
    if s.redis_edge.enabled and not (s.redis_edge.url or s.engine.redis_url):
        raise ConfigError(
            "setting redis_edge.url (or engine.redis_url) is required when redis_edge.enabled"
        )
    for name, url in (
        ("engine.redis_url", s.engine.redis_url),
        ("redis_edge.url", s.redis_edge.url),
    ):
        if url and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"setting {name} must start with redis://, rediss:// or unix://")


def _file(name: str, path: str) -> None:
    if path and not Path(path).is_file():
        raise ConfigError(f"setting {name}: file {path} does not exist")


def _origins(s: Settings) -> Origins:
    try:
        return Origins.parse(s.server.allowed_origins, tls=s.tls.ws)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _security(s: Settings) -> None:
    _origins(s)
    auth, tls = s.auth, s.tls
    if auth.jwt_algorithm not in ALGORITHMS:
        raise ConfigError(
            f"setting auth.jwt_algorithm must be one of {', '.join(ALGORITHMS)}, "
            f"got {auth.jwt_algorithm!r}"
        )
    for name in ("jwt_public_key_file", "jwt_jwks_file", "jwt_private_key_file"):
        _file(f"auth.{name}", getattr(auth, name))
    for f in dataclasses.fields(tls):
        _file(f"tls.{f.name}", getattr(tls, f.name))
    for port in ("grpc", "ws"):
        cert, key = getattr(tls, f"{port}_cert_file"), getattr(tls, f"{port}_key_file")
        if bool(cert) != bool(key):
            missing = f"{port}_key_file" if cert else f"{port}_cert_file"
            raise ConfigError(f"setting tls.{missing} is required with tls.{port}_*_file")
    if tls.grpc_client_ca_file and not tls.grpc:
        raise ConfigError(
            "setting tls.grpc_client_ca_file needs tls.grpc_cert_file and tls.grpc_key_file"
        )
    if auth.enabled:
        if auth.jwt_algorithm == "HS256" and not auth.jwt_secret:
            raise ConfigError(
                "setting auth.jwt_secret (or JWT_SECRET_KEY) is required when auth.enabled "
                "with HS256"
            )
        if auth.jwt_algorithm != "HS256" and not (auth.jwt_public_key_file or auth.jwt_jwks_file):
            raise ConfigError(
                f"setting auth.jwt_public_key_file or auth.jwt_jwks_file is required with "
                f"{auth.jwt_algorithm}"
            )
    elif s.env != "development":
        for name, host in (("server.host", s.server.host), ("server.ws_host", s.server.ws_host)):
            if host and not is_loopback(host):
                raise ConfigError(
                    f"setting {name} = {host!r} is reachable from other machines while "
                    f"auth.enabled is false ({s.env}): enable auth or bind to 127.0.0.1"
                )


def _repeats(secret: str) -> bool:
    """A secret made of one short piece over and over ("changeme" * 4, "0123456789" * 4)."""
    size = len(secret)
    return any(
        secret == (secret[:period] * (size // period + 1))[:size]
        for period in range(1, size // 2 + 1)
    )


def _production(s: Settings) -> None:
    auth = s.auth
    if not auth.enabled:
        raise ConfigError("production refuses auth.enabled = false (or API_KEY_REQUIRED=false)")
    if auth.jwt_algorithm == "HS256":
        secret = auth.jwt_secret
        if secret.lower() in WEAK_SECRETS or len(set(secret)) < 8 or _repeats(secret):
            raise ConfigError("production refuses a default or guessable auth.jwt_secret")
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"production refuses an auth.jwt_secret shorter than {MIN_SECRET_LENGTH} "
                f"characters (it has {len(secret)})"
            )
    for port in ("grpc", "ws"):
        if not getattr(s.tls, port):
            raise ConfigError(
                f"production refuses TLS off on the {port} port: set tls.{port}_cert_file and "
                f"tls.{port}_key_file"
            )
    if _origins(s).any:
        raise ConfigError(
            "production refuses server.allowed_origins = '*': list the origins of the pages "
            "allowed to open sessions (or leave it empty for the hub's own dashboard only)"
        )
