"""The settings, one frozen dataclass per section: the rest of the code reads
`settings.session.grace_period` with a known type. Each field is the setting
`<section>.<field>`, overridable as `AGENTPLEX_<SECTION>__<FIELD>`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentplex.core.limits import Limits

ENVIRONMENTS = ("development", "staging", "production")
AGENT_KINDS = (
    "claude_code",
    "cursor",
    "github_copilot",
    "gemini_cli",
    "codex",
    "opencode",
    "custom",
)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    grpc_port: int = 50051
    # Empty: server.host.
    ws_host: str = ""
    ws_port: int = 8765
    node_id: str = ""
    max_message_bytes: int = 8 * 1024 * 1024
    # Comma-separated origins (scheme://host[:port]) whose pages may open WebSocket sessions
    # and load the dashboard; "*" allows any; empty: only the hub's own pages (same origin as
    # the request's Host). Requests without an Origin header (not from a browser) always pass.
    allowed_origins: str = "*"
    # SIGTERM: agents are told to drain and their tasks requeued; the node exits within this.
    shutdown_timeout: float = 10


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
    redis_max_connections: int = 64
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
class KindSettings:
    """How a runner of one CLI kind runs it (`agents.<kind>.<field>`)."""

    cli_path: str = ""
    max_concurrent_tasks: int = 1
    # Run the CLI in its restricted mode where it has one.
    sandbox: bool = True
    timeout: float = 1800
    # Comma-separated environment variables passed to the CLI beyond the scrubbed minimum.
    env_allow: str = ""
    # Extra arguments appended to the CLI's command line (shell-style quoting).
    extra_args: str = ""


_CLI_NAMES = {
    "claude_code": "claude",
    "cursor": "cursor-agent",
    "github_copilot": "copilot",
    "gemini_cli": "gemini",
    "codex": "codex",
    "opencode": "opencode",
    "custom": "",  # `agentplex agent --kind custom --exec TEMPLATE` names its command
}


def _kinds() -> dict[str, KindSettings]:
    return {kind: KindSettings(cli_path=_CLI_NAMES[kind]) for kind in AGENT_KINDS}


@dataclass(frozen=True, slots=True)
class AgentSettings:
    default_max_concurrent_tasks: int = 1
    kinds: dict[str, KindSettings] = field(default_factory=_kinds)

    def kind(self, name: str) -> KindSettings:
        return self.kinds[name]


@dataclass(frozen=True, slots=True)
class TaskSettings:
    default_max_attempts: int = 3
    max_attempts: int = 20
    ack_deadline: float = 30
    max_events: int = 1000
    retention: float = 86_400


@dataclass(frozen=True, slots=True)
class AuthSettings:
    enabled: bool = False
    # HS256 (jwt_secret) or RS256/ES256 (jwt_public_key_file or jwt_jwks_file).
    jwt_algorithm: str = "HS256"
    jwt_secret: str = ""
    jwt_public_key_file: str = ""
    jwt_jwks_file: str = ""
    # For `agentplex token issue` with RS256/ES256.
    jwt_private_key_file: str = ""
    audience: str = "agentplex"
    issuer: str = ""
    # Clock skew allowed on exp and nbf, in seconds.
    leeway: float = 30
    # Lifetime of tokens `agentplex token issue` mints without --ttl.
    token_ttl: float = 3600


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """TLS per port: on when both certificate and key are set."""

    grpc_cert_file: str = ""
    grpc_key_file: str = ""
    # Set: gRPC clients must present a certificate signed by this CA (mutual TLS).
    grpc_client_ca_file: str = ""
    ws_cert_file: str = ""
    ws_key_file: str = ""

    @property
    def grpc(self) -> bool:
        return bool(self.grpc_cert_file and self.grpc_key_file)

    @property
    def ws(self) -> bool:
        return bool(self.ws_cert_file and self.ws_key_file)


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """Token buckets per principal: `*_rate` per second, up to `*_burst` at once."""

    enabled: bool = False
    publish_rate: float = 1000
    publish_burst: int = 2000
    submit_rate: float = 50
    submit_burst: int = 100
    connect_rate: float = 10
    connect_burst: int = 50
    # Live sessions one principal may hold at once.
    max_sessions: int = 1000


@dataclass(frozen=True, slots=True)
class AuditSettings:
    enabled: bool = True
    # A file to append JSON lines to; "-" for standard output.
    file: str = "-"


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    # text (readable) or json (one object per line).
    format: str = "text"
    level: str = "INFO"


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
    auth: AuthSettings = field(default_factory=AuthSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    rate_limits: RateLimitSettings = field(default_factory=RateLimitSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)


SECTIONS: dict[str, type[Any]] = {
    "server": ServerSettings,
    "engine": EngineSettings,
    "redis_edge": RedisEdgeSettings,
    "channels": ChannelSettings,
    "session": SessionSettings,
    "agents": AgentSettings,
    "tasks": TaskSettings,
    "limits": Limits,
    "auth": AuthSettings,
    "tls": TlsSettings,
    "rate_limits": RateLimitSettings,
    "audit": AuditSettings,
    "logging": LoggingSettings,
}

# Settings whose values are secrets: shown redacted, never logged.
SECRETS = frozenset({"auth.jwt_secret"})
