"""Settings: dynaconf layers (packaged file, user file, the seed's variables, AGENTPLEX_*
variables, flags) into typed sections, validated at start. See `settings.toml` for every key."""

from agentplex.config.loader import PACKAGED, load_settings
from agentplex.config.sections import (
    AGENT_KINDS,
    ENVIRONMENTS,
    SECRETS,
    AgentSettings,
    AuditSettings,
    AuthSettings,
    ChannelSettings,
    EngineSettings,
    KindSettings,
    LoggingSettings,
    RateLimitSettings,
    RedisEdgeSettings,
    ServerSettings,
    SessionSettings,
    Settings,
    TaskSettings,
    TlsSettings,
)
from agentplex.config.show import effective
from agentplex.config.validate import ConfigError

__all__ = [
    "AGENT_KINDS",
    "ENVIRONMENTS",
    "PACKAGED",
    "SECRETS",
    "AgentSettings",
    "AuditSettings",
    "AuthSettings",
    "ChannelSettings",
    "ConfigError",
    "EngineSettings",
    "KindSettings",
    "LoggingSettings",
    "RateLimitSettings",
    "RedisEdgeSettings",
    "ServerSettings",
    "SessionSettings",
    "Settings",
    "TaskSettings",
    "TlsSettings",
    "effective",
    "load_settings",
]
