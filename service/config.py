"""Settings: dynaconf layers (packaged file, user file, environment variables) into typed sections.

Each section is a frozen dataclass, so the rest of the code reads `settings.session.grace_period`
with a known type. Unknown keys and bad values fail at start with the setting's full name.
Later issues add sections and validators here; nothing else needs to change.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dynaconf import Dynaconf

from agentplex.core.limits import Limits

ENVIRONMENTS = ("development", "staging", "production")
PACKAGED = Path(__file__).with_name("settings.toml")


class ConfigError(ValueError):
    """A setting is missing, unknown or out of range; the message names it."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    grpc_port: int = 50051
    ws_port: int = 8765
    node_id: str = ""
    max_message_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class EngineSettings:
    name: str = "memory"
    redis_url: str = ""
    redis_cluster: bool = False
    redis_prefix: str = "agentplex"
    redis_tls_ca_file: str = ""
    redis_tls_cert_file: str = ""
    redis_tls_key_file: str = ""
    redis_timeout: float = 2
    node_ttl: float = 10


@dataclass(frozen=True, slots=True)
class RedisEdgeSettings:
    enabled: bool = False
    url: str = ""
    prefix: str = "agentplex:"
    ingress: str = "*"


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    history_size: int = 10_000
    history_ttl: float = 86_400
    dedup_window: float = 120
    dedup_size: int = 10_000


@dataclass(frozen=True, slots=True)
class SessionSettings:
    heartbeat_interval: float = 10
    heartbeat_timeout: float = 30
    grace_period: float = 60
    ack_timeout: float = 30
    tick: float = 0.25


@dataclass(frozen=True, slots=True)
class AgentSettings:
    default_max_concurrent_tasks: int = 1


@dataclass(frozen=True, slots=True)
class TaskSettings:
    default_max_attempts: int = 3
    max_attempts: int = 20
    ack_deadline: float = 30
    max_events: int = 1000
    retention: float = 86_400


@dataclass(frozen=True, slots=True)
class Settings:
    env: str = "development"
    server: ServerSettings = field(default_factory=ServerSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    redis_edge: RedisEdgeSettings = field(default_factory=RedisEdgeSettings)
    channels: ChannelSettings = field(default_factory=ChannelSettings)
    session: SessionSettings = field(default_factory=SessionSettings)
    agents: AgentSettings = field(default_factory=AgentSettings)
    tasks: TaskSettings = field(default_factory=TaskSettings)
    limits: Limits = field(default_factory=Limits)


_SECTIONS: dict[str, type[Any]] = {
    "server": ServerSettings,
    "engine": EngineSettings,
    "redis_edge": RedisEdgeSettings,
    "channels": ChannelSettings,
    "session": SessionSettings,
    "agents": AgentSettings,
    "tasks": TaskSettings,
    "limits": Limits,
}


# Keys dynaconf itself adds to the settings object.
_DYNACONF_KEYS = frozenset({"LOAD_DOTENV", "ENV", "ENVIRONMENTS", "SETTINGS_FILE_FOR_DYNACONF"})

_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}


def _coerce(name: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"setting {name}: {value!r} is not a valid {kind.__name__}")
    try:
        if kind is bool:
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name}: {value!r} is not a valid {kind.__name__}") from None


def _section(name: str, cls: type[Any], raw: dict[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        key = key.lower()
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown setting {name}.{key} (known: {known})")
        kind = _TYPES[str(fields[key].type)]
        values[key] = _coerce(f"{name}.{key}", value, kind)
    return cls(**values)


def _validate(s: Settings) -> None:
    def positive(section: str, obj: Any, *, allow_zero: tuple[str, ...] = ()) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if numeric and (value < 0 or (value == 0 and f.name not in allow_zero)):
                raise ConfigError(f"setting {section}.{f.name} must be positive, got {value}")

    positive("server", s.server, allow_zero=("grpc_port", "ws_port"))
    for port_name in ("grpc_port", "ws_port"):
        if getattr(s.server, port_name) > 65535:
            raise ConfigError(f"setting server.{port_name} must be 0 to 65535")
    positive("engine", s.engine)
    positive("channels", s.channels)
    positive("session", s.session)
    positive("agents", s.agents)
    positive("tasks", s.tasks)
    if s.tasks.default_max_attempts > s.tasks.max_attempts:
        raise ConfigError("setting tasks.default_max_attempts must not exceed tasks.max_attempts")
    positive("limits", s.limits)
    if s.limits.session_queue < s.limits.max_batch:
        raise ConfigError(
            "setting limits.session_queue must be at least limits.max_batch, or one accepted "
            "batch would overflow every subscriber"
        )
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
    if s.session.heartbeat_timeout <= s.session.heartbeat_interval:
        raise ConfigError(
            "setting session.heartbeat_timeout must be larger than session.heartbeat_interval"
        )


def _check_file_layout(path: Path) -> None:
    """Sections sit under an environment (`[default.engine]`, `[production.engine]`): a bare
    `[engine]` would be read as an environment named "engine" and silently ignored."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"config file {path}: {err}") from None
    for name in data:
        if name.lower() in _SECTIONS:
            raise ConfigError(
                f"config file {path}: write [default.{name}] (or [production.{name}], ...), "
                f"not [{name}]"
            )
        if name.lower() not in (*ENVIRONMENTS, "default"):
            raise ConfigError(
                f"config file {path}: [{name}] is neither an environment "
                f"({', '.join(ENVIRONMENTS)}, default) nor under one"
            )


def load_settings(
    env: str | None = None,
    config_file: str | os.PathLike[str] | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> Settings:
    """Build the effective settings: packaged defaults, then `config_file`, then environment
    variables, then `overrides` (from command-line flags)."""
    env = env or os.environ.get("AGENTPLEX_ENV") or "development"
    if env not in ENVIRONMENTS:
        raise ConfigError(f"AGENTPLEX_ENV must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")
    files = [str(PACKAGED)]
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        _check_file_layout(path)
        files.append(str(path))
    dyn = Dynaconf(
        envvar_prefix="AGENTPLEX",
        settings_files=files,
        environments=True,
        env=env,
        merge_enabled=True,
        load_dotenv=False,
    )
    for key in dyn.as_dict():
        if key.lower() not in _SECTIONS and key not in _DYNACONF_KEYS:
            known = ", ".join(_SECTIONS)
            raise ConfigError(f"unknown setting section {key.lower()!r} (known: {known})")
    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        section = dyn.get(name, {}) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"setting {name} must be a section of keys, got {section!r}")
        raw = dict(section)
        raw.update((overrides or {}).get(name, {}))
        sections[name] = _section(name, cls, raw)
    settings = Settings(env=env, **sections)
    _validate(settings)
    return settings
