"""The seed's environment variable names (REDIS_HOST, JWT_SECRET_KEY, CLAUDE_CLI_PATH, ...),
honoured beside `AGENTPLEX_<SECTION>__<KEY>`, which wins where both are set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

TRUE = ("1", "true", "yes", "on")

# Seed name -> (section, key); a key "kind.field" sits in agents.<kind>.
SEED_NAMES = {
    "WEBSOCKET_HOST": ("server", "ws_host"),
    "WEBSOCKET_PORT": ("server", "ws_port"),
    "JWT_SECRET_KEY": ("auth", "jwt_secret"),
    "API_KEY_REQUIRED": ("auth", "enabled"),
    "RATE_LIMIT_ENABLED": ("rate_limits", "enabled"),
    "CLAUDE_CLI_PATH": ("agents", "claude_code.cli_path"),
    "CURSOR_CLI_PATH": ("agents", "cursor.cli_path"),
    "GH_CLI_PATH": ("agents", "github_copilot.cli_path"),
    "GEMINI_CLI_PATH": ("agents", "gemini_cli.cli_path"),
}


class SeedError(ValueError):
    pass


def seed_values(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """What the seed's variables in `environ` set, as {section: {key: value}}."""
    values: dict[str, dict[str, Any]] = {}

    def put(section: str, key: str, value: Any) -> None:
        values.setdefault(section, {})[key] = value

    for name, (section, key) in SEED_NAMES.items():
        if name in environ:
            put(section, key, environ[name])
    if environ.get("DEBUG", "").strip().lower() in TRUE:
        put("logging", "level", "DEBUG")
    if environ.get("REDIS_HOST"):
        put("engine", "redis_url", _redis_url(environ))
    ssl = environ.get("WEBSOCKET_SSL_ENABLED")
    if ssl is not None and ssl.strip().lower() in TRUE:
        for var, key in (
            ("WEBSOCKET_SSL_CERTFILE", "ws_cert_file"),
            ("WEBSOCKET_SSL_KEYFILE", "ws_key_file"),
        ):
            if not environ.get(var):
                raise SeedError(f"WEBSOCKET_SSL_ENABLED is set: {var} must name a file")
            put("tls", key, environ[var])
    return values


def _redis_url(environ: Mapping[str, str]) -> str:
    scheme = "rediss" if environ.get("REDIS_SSL", "").strip().lower() in TRUE else "redis"
    password = environ.get("REDIS_PASSWORD", "")
    auth = f":{quote(password, safe='')}@" if password else ""
    port = environ.get("REDIS_PORT") or "6379"
    if not port.isdigit():
        raise SeedError(f"REDIS_PORT must be a port number, got {port!r}")
    return f"{scheme}://{auth}{environ['REDIS_HOST']}:{port}/0"
