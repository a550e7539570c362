"""Build the effective settings from dynaconf's layers: the packaged file, a user file, the
seed's variables, `AGENTPLEX_<SECTION>__<KEY>` variables, then command-line flags. Unknown keys
and bad values fail at start with the setting's full name."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dynaconf import Dynaconf

from agentplex.config.sections import (
    AGENT_KINDS,
    ENVIRONMENTS,
    SECTIONS,
    AgentSettings,
    KindSettings,
    Settings,
)
from agentplex.config.seed import SeedError, seed_values
from agentplex.config.validate import ConfigError, validate

PACKAGED = Path(__file__).with_name("settings.toml")

# Keys dynaconf itself adds to the settings object, and the variables of the hub's clients
# (AGENTPLEX_HUB, AGENTPLEX_TOKEN, AGENTPLEX_TLS_CA), which share the prefix but are no settings.
_NOT_SETTINGS = frozenset(
    {"LOAD_DOTENV", "ENV", "ENVIRONMENTS", "SETTINGS_FILE_FOR_DYNACONF", "HUB", "TOKEN", "TLS_CA"}
)
_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}
Overrides = dict[str, dict[str, Any]]


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


def _section(name: str, cls: type[Any], raw: Mapping[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls) if str(f.type) in _TYPES}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        key = key.lower()
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown setting {name}.{key} (known: {known})")
        values[key] = _coerce(f"{name}.{key}", value, _TYPES[str(fields[key].type)])
    return cls(**values)


def _agents(raw: Mapping[str, Any]) -> AgentSettings:
    """`agents.default_max_concurrent_tasks` and one sub-section per CLI kind."""
    flat, kinds = {}, dict(AgentSettings().kinds)
    for key, value in raw.items():
        key = key.lower()
        if isinstance(value, Mapping):
            if key not in AGENT_KINDS:
                known = ", ".join(AGENT_KINDS)
                raise ConfigError(f"unknown setting section agents.{key} (kinds: {known})")
            given = {k.lower(): v for k, v in value.items()}
            merged = {**dataclasses.asdict(kinds[key]), **given}
            kinds[key] = _section(f"agents.{key}", KindSettings, merged)
        else:
            flat[key] = value
    agents: AgentSettings = _section("agents", AgentSettings, flat)
    return dataclasses.replace(agents, kinds=kinds)


def _check_file_layout(path: Path) -> None:
    """Sections sit under an environment (`[default.engine]`, `[production.engine]`): a bare
    `[engine]` would be read as an environment named "engine" and silently ignored."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"config file {path}: {err}") from None
    for name in data:
        if name.lower() in SECTIONS:
            raise ConfigError(
                f"config file {path}: write [default.{name}] (or [production.{name}], ...), "
                f"not [{name}]"
            )
        if name.lower() not in (*ENVIRONMENTS, "default"):
            raise ConfigError(
                f"config file {path}: [{name}] is neither an environment "
                f"({', '.join(ENVIRONMENTS)}, default) nor under one"
            )


def _seed(environ: Mapping[str, str]) -> Overrides:
    """The seed's variables, less what an AGENTPLEX_<SECTION>__<KEY> variable sets itself."""
    try:
        seeded = seed_values(environ)
    except SeedError as err:
        raise ConfigError(str(err)) from None
    given = {name.upper() for name in environ}
    return {
        section: {
            key: value
            for key, value in keys.items()
            if f"AGENTPLEX_{section}__{key.replace('.', '__')}".upper() not in given
        }
        for section, keys in seeded.items()
    }


def _merge(raw: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Layer `extra` ({key or "kind.key": value}) over a section's raw values."""
    for key, value in extra.items():
        head, _, tail = key.partition(".")
        if tail:
            sub = raw.setdefault(head, {})
            sub[tail] = value
        else:
            raw[key] = value


def load_settings(
    env: str | None = None,
    config_file: str | os.PathLike[str] | None = None,
    overrides: Overrides | None = None,
) -> Settings:
    """The effective settings: packaged defaults, then `config_file`, then the seed's
    variables, then AGENTPLEX_* variables, then `overrides` (from command-line flags)."""
    environ = os.environ
    env = env or environ.get("AGENTPLEX_ENV") or environ.get("ENVIRONMENT") or "development"
    if env not in ENVIRONMENTS:
        raise ConfigError(
            f"AGENTPLEX_ENV (or ENVIRONMENT) must be one of {', '.join(ENVIRONMENTS)}, got {env!r}"
        )
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
        if key.lower() not in SECTIONS and key not in _NOT_SETTINGS:
            known = ", ".join(SECTIONS)
            raise ConfigError(f"unknown setting section {key.lower()!r} (known: {known})")
    seeded = _seed(environ)
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        section = dyn.get(name, {}) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"setting {name} must be a section of keys, got {section!r}")
        raw = {k.lower(): (dict(v) if isinstance(v, Mapping) else v) for k, v in section.items()}
        _merge(raw, seeded.get(name, {}))
        _merge(raw, (overrides or {}).get(name, {}))
        sections[name] = _agents(raw) if cls is AgentSettings else _section(name, cls, raw)
    settings = Settings(env=env, **sections)
    validate(settings)
    return settings
