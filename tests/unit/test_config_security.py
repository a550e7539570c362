"""Settings that guard the hub: environments and what production refuses, hosts reachable
without auth, the seed's variable names, per-kind agent settings, TLS pairing, and the
effective settings shown without their secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from redis.connection import parse_url

from agentplex.config import AGENT_KINDS, ConfigError, KindSettings, effective, load_settings
from agentplex.config.show import masked_url
from tests.support.auth import KeyPair, key_pair
from tests.support.config_env import (  # noqa: F401 (fixtures: clean_environment is autouse)
    STRONG_SECRET,
    clean_environment,
    production_ready,
    refused,
)

_DEFAULT_CLIS = {
    "claude_code": "claude",
    "cursor": "cursor-agent",
    "github_copilot": "copilot",
    "gemini_cli": "gemini",
    "codex": "codex",
    "opencode": "opencode",
    "custom": "",  # --kind custom takes its command from --exec
}


@pytest.fixture(scope="module")
def rsa_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    """An RSA key pair as PEM files, the kind `auth.jwt_public_key_file` names."""
    return key_pair(tmp_path_factory.mktemp("keys"), "RS256")


def existing(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_text("placeholder: validation checks that the file exists")
    return str(path)


# 1. Environments


def test_agentplex_env_selects_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().env == "development"
    monkeypatch.setenv("AGENTPLEX_ENV", "staging")
    assert load_settings().env == "staging"


def test_seed_environment_is_honoured_without_agentplex_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "staging")
    assert load_settings().env == "staging"
    # It is really that environment: production's checks apply to ENVIRONMENT=production.
    monkeypatch.setenv("ENVIRONMENT", "production")
    refused("auth.jwt_secret")


@pytest.mark.usefixtures("production_ready")
def test_seed_environment_is_honoured_for_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    s = load_settings()
    assert s.env == "production" and s.auth.enabled


def test_agentplex_env_beats_seed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("AGENTPLEX_ENV", "development")
    s = load_settings()
    assert s.env == "development" and not s.auth.enabled


def test_a_bad_seed_environment_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "prod")
    refused("ENVIRONMENT", "'prod'", "production")


@pytest.mark.usefixtures("production_ready")
def test_production_defaults() -> None:
    s = load_settings("production")
    assert s.auth.enabled is True
    assert s.rate_limits.enabled is True
    assert s.logging.format == "json"
    assert s.server.allowed_origins == ""
    # Development keeps the open defaults.
    dev = load_settings("development")
    assert (dev.auth.enabled, dev.rate_limits.enabled) == (False, False)
    assert (dev.logging.format, dev.server.allowed_origins) == ("text", "*")


# 2. What production refuses


@pytest.mark.usefixtures("production_ready")
def test_production_accepts_what_it_demands() -> None:
    s = load_settings("production")
    assert s.auth.jwt_secret == STRONG_SECRET and s.tls.grpc and s.tls.ws


@pytest.mark.usefixtures("production_ready")
@pytest.mark.parametrize(
    ("variable", "value", "fragments"),
    [
        ("AGENTPLEX_AUTH__ENABLED", "false", ["production refuses", "auth.enabled"]),
        ("API_KEY_REQUIRED", "false", ["auth.enabled", "API_KEY_REQUIRED"]),
        ("AGENTPLEX_AUTH__JWT_SECRET", "", ["auth.jwt_secret", "required"]),
        ("AGENTPLEX_AUTH__JWT_SECRET", "secret", ["guessable auth.jwt_secret"]),
        ("AGENTPLEX_AUTH__JWT_SECRET", "changeme", ["guessable auth.jwt_secret"]),
        ("AGENTPLEX_AUTH__JWT_SECRET", "CHANGEME", ["guessable auth.jwt_secret"]),
        ("AGENTPLEX_AUTH__JWT_SECRET", "a" * 40, ["guessable auth.jwt_secret"]),
        ("AGENTPLEX_AUTH__JWT_SECRET", "ab" * 30, ["guessable auth.jwt_secret"]),
        ("AGENTPLEX_AUTH__JWT_SECRET", "changeme-" * 4, ["guessable auth.jwt_secret"]),
        ("AGENTPLEX_AUTH__JWT_SECRET", "0123456789" * 4, ["guessable auth.jwt_secret"]),
        ("AGENTPLEX_AUTH__JWT_SECRET", STRONG_SECRET[:31], ["auth.jwt_secret", "32", "31"]),
        ("AGENTPLEX_AUTH__JWT_SECRET", STRONG_SECRET[:12], ["auth.jwt_secret", "(it has 12)"]),
        ("AGENTPLEX_TLS__GRPC_CERT_FILE", "", ["tls.grpc_cert_file"]),
        ("AGENTPLEX_TLS__WS_CERT_FILE", "", ["tls.ws_cert_file"]),
        ("AGENTPLEX_SERVER__ALLOWED_ORIGINS", "*", ["server.allowed_origins"]),
        (
            "AGENTPLEX_SERVER__ALLOWED_ORIGINS",
            "https://app.example.com, *",
            ["server.allowed_origins", "'*'"],
        ),
    ],
)
def test_production_refusals_name_the_setting(
    variable: str, value: str, fragments: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    if variable.startswith("AGENTPLEX_TLS__"):
        # TLS off on that port: neither its certificate nor its key.
        monkeypatch.setenv(variable.replace("CERT", "KEY"), "")
    refused(*fragments, env="production")
    # The same settings load in development: the refusal is production's.
    assert load_settings("development").env == "development"


@pytest.mark.usefixtures("production_ready")
def test_production_accepts_a_secret_of_exactly_32_characters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTPLEX_AUTH__JWT_SECRET", STRONG_SECRET[:32])
    assert load_settings("production").auth.jwt_secret == STRONG_SECRET[:32]


@pytest.mark.usefixtures("production_ready")
def test_production_accepts_listed_origins(monkeypatch: pytest.MonkeyPatch) -> None:
    origins = "https://app.example.com,https://ops.example.com"
    monkeypatch.setenv("AGENTPLEX_SERVER__ALLOWED_ORIGINS", origins)
    assert load_settings("production").server.allowed_origins == origins


@pytest.mark.usefixtures("production_ready")
def test_seed_jwt_secret_is_checked_like_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTPLEX_AUTH__JWT_SECRET")
    monkeypatch.setenv("JWT_SECRET_KEY", "changeme")
    refused("guessable auth.jwt_secret", env="production")
    monkeypatch.setenv("JWT_SECRET_KEY", STRONG_SECRET)
    assert load_settings("production").auth.jwt_secret == STRONG_SECRET


@pytest.mark.usefixtures("production_ready")
def test_production_rs256_needs_a_public_key(
    monkeypatch: pytest.MonkeyPatch, rsa_keys: KeyPair
) -> None:
    monkeypatch.delenv("AGENTPLEX_AUTH__JWT_SECRET")
    monkeypatch.setenv("AGENTPLEX_AUTH__JWT_ALGORITHM", "RS256")
    refused("auth.jwt_public_key_file", "auth.jwt_jwks_file", "RS256", env="production")
    monkeypatch.setenv("AGENTPLEX_AUTH__JWT_PUBLIC_KEY_FILE", rsa_keys.public_file)
    s = load_settings("production")
    assert s.auth.jwt_algorithm == "RS256"
    assert s.auth.jwt_public_key_file == rsa_keys.public_file
    assert s.auth.jwt_secret == ""  # RS256 needs no secret


@pytest.mark.usefixtures("production_ready")
def test_production_rs256_accepts_a_jwks_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AGENTPLEX_AUTH__JWT_ALGORITHM", "RS256")
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    monkeypatch.setenv("AGENTPLEX_AUTH__JWT_JWKS_FILE", str(jwks))
    assert load_settings("production").auth.jwt_jwks_file == str(jwks)


@pytest.mark.usefixtures("production_ready")
def test_production_rs256_refuses_a_missing_key_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AGENTPLEX_AUTH__JWT_ALGORITHM", "RS256")
    missing = tmp_path / "gone.pub"
    monkeypatch.setenv("AGENTPLEX_AUTH__JWT_PUBLIC_KEY_FILE", str(missing))
    refused("auth.jwt_public_key_file", str(missing), "does not exist", env="production")


# 3. Hosts reachable from other machines without auth


@pytest.mark.parametrize("env", ["staging", "production"])
@pytest.mark.parametrize("variable", ["AGENTPLEX_SERVER__HOST", "AGENTPLEX_SERVER__WS_HOST"])
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "hub.example.com"])
def test_a_reachable_host_without_auth_is_refused(
    env: str, variable: str, host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTPLEX_AUTH__ENABLED", "false")
    monkeypatch.setenv(variable, host)
    setting = "server.ws_host" if variable.endswith("WS_HOST") else "server.host"
    refused(f"setting {setting} = {host!r}", "auth.enabled", env=env)


def test_seed_websocket_host_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSOCKET_HOST", "0.0.0.0")
    refused("server.ws_host", env="staging")


@pytest.mark.parametrize("variable", ["AGENTPLEX_SERVER__HOST", "AGENTPLEX_SERVER__WS_HOST"])
def test_development_accepts_a_reachable_host_without_auth(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, "0.0.0.0")
    s = load_settings("development")
    assert "0.0.0.0" in (s.server.host, s.server.ws_host) and not s.auth.enabled


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_staging_accepts_loopback_without_auth(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_SERVER__HOST", host)
    monkeypatch.setenv("AGENTPLEX_SERVER__WS_HOST", host)
    s = load_settings("staging")
    assert (s.server.host, s.server.ws_host) == (host, host)


def test_staging_accepts_a_reachable_host_with_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_SERVER__HOST", "0.0.0.0")
    monkeypatch.setenv("AGENTPLEX_AUTH__ENABLED", "true")
    refused("auth.jwt_secret", env="staging")  # auth on needs its secret
    monkeypatch.setenv("AGENTPLEX_AUTH__JWT_SECRET", STRONG_SECRET)
    assert load_settings("staging").server.host == "0.0.0.0"


# 4. The seed's variable names


def test_seed_redis_variables_build_the_engine_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "redis.internal")
    assert load_settings().engine.redis_url == "redis://redis.internal:6379/0"
    monkeypatch.setenv("REDIS_PORT", "6380")
    assert load_settings().engine.redis_url == "redis://redis.internal:6380/0"
    monkeypatch.setenv("REDIS_SSL", "false")
    assert load_settings().engine.redis_url.startswith("redis://")


def test_seed_redis_password_is_percent_encoded(monkeypatch: pytest.MonkeyPatch) -> None:
    password = "p@ss:w/rd#?%"
    monkeypatch.setenv("REDIS_HOST", "redis.internal")
    monkeypatch.setenv("REDIS_PORT", "6380")
    monkeypatch.setenv("REDIS_PASSWORD", password)
    monkeypatch.setenv("REDIS_SSL", "true")
    url = load_settings().engine.redis_url
    assert url == "rediss://:p%40ss%3Aw%2Frd%23%3F%25@redis.internal:6380/0"
    # redis-py reads back the password as given, and the host and port after it.
    parsed = parse_url(url)
    assert (parsed["password"], parsed["host"], parsed["port"]) == (
        password,
        "redis.internal",
        6380,
    )


def test_seed_redis_password_alone_sets_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", "hunter2")
    monkeypatch.setenv("REDIS_PORT", "6380")
    assert load_settings().engine.redis_url == ""


def test_agentplex_redis_url_beats_the_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "seed.internal")
    monkeypatch.setenv("REDIS_PASSWORD", "seedpass")
    monkeypatch.setenv("AGENTPLEX_ENGINE__REDIS_URL", "redis://mine.internal:7000/2")
    assert load_settings().engine.redis_url == "redis://mine.internal:7000/2"


def test_a_non_numeric_redis_port_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "redis.internal")
    monkeypatch.setenv("REDIS_PORT", "six")
    refused("REDIS_PORT", "'six'")


def test_seed_websocket_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSOCKET_HOST", "127.0.0.5")
    monkeypatch.setenv("WEBSOCKET_PORT", "9001")
    s = load_settings()
    assert (s.server.ws_host, s.server.ws_port) == ("127.0.0.5", 9001)
    monkeypatch.setenv("AGENTPLEX_SERVER__WS_PORT", "9002")
    assert load_settings().server.ws_port == 9002
    monkeypatch.setenv("WEBSOCKET_PORT", "high")
    monkeypatch.delenv("AGENTPLEX_SERVER__WS_PORT")
    refused("server.ws_port", "'high'")


def test_seed_websocket_ssl_sets_the_ws_tls_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cert, key = existing(tmp_path, "ws.crt"), existing(tmp_path, "ws.key")
    monkeypatch.setenv("WEBSOCKET_SSL_CERTFILE", cert)
    monkeypatch.setenv("WEBSOCKET_SSL_KEYFILE", key)
    # The files alone do not turn TLS on: WEBSOCKET_SSL_ENABLED does.
    assert not load_settings().tls.ws
    monkeypatch.setenv("WEBSOCKET_SSL_ENABLED", "true")
    tls = load_settings().tls
    assert (tls.ws_cert_file, tls.ws_key_file, tls.ws) == (cert, key, True)
    assert not tls.grpc


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({}, "WEBSOCKET_SSL_CERTFILE"),
        ({"WEBSOCKET_SSL_KEYFILE": "ws.key"}, "WEBSOCKET_SSL_CERTFILE"),
        ({"WEBSOCKET_SSL_CERTFILE": "ws.crt"}, "WEBSOCKET_SSL_KEYFILE"),
    ],
)
def test_seed_websocket_ssl_without_its_files_is_refused(
    given: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WEBSOCKET_SSL_ENABLED", "true")
    for variable, name in given.items():
        monkeypatch.setenv(variable, existing(tmp_path, name))
    refused(named, "WEBSOCKET_SSL_ENABLED")


def test_seed_websocket_ssl_with_a_missing_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "absent.crt"
    monkeypatch.setenv("WEBSOCKET_SSL_ENABLED", "true")
    monkeypatch.setenv("WEBSOCKET_SSL_CERTFILE", str(missing))
    monkeypatch.setenv("WEBSOCKET_SSL_KEYFILE", existing(tmp_path, "ws.key"))
    refused("tls.ws_cert_file", str(missing), "does not exist")


def test_seed_auth_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY_REQUIRED", "true")
    refused("auth.jwt_secret", "JWT_SECRET_KEY")  # auth on, nothing to verify tokens with
    monkeypatch.setenv("JWT_SECRET_KEY", STRONG_SECRET)
    s = load_settings()
    assert (s.auth.enabled, s.auth.jwt_secret) == (True, STRONG_SECRET)
    monkeypatch.setenv("AGENTPLEX_AUTH__JWT_SECRET", STRONG_SECRET[::-1])
    assert load_settings().auth.jwt_secret == STRONG_SECRET[::-1]  # AGENTPLEX_* wins
    monkeypatch.setenv("API_KEY_REQUIRED", "false")
    assert load_settings().auth.enabled is False


def test_seed_rate_limit_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_ENABLED", "true")
    assert load_settings().rate_limits.enabled is True
    monkeypatch.setenv("RATE_LIMIT_ENABLED", "0")
    assert load_settings().rate_limits.enabled is False


@pytest.mark.parametrize(
    ("variable", "kind"),
    [
        ("CLAUDE_CLI_PATH", "claude_code"),
        ("CURSOR_CLI_PATH", "cursor"),
        ("GH_CLI_PATH", "github_copilot"),
        ("GEMINI_CLI_PATH", "gemini_cli"),
    ],
)
def test_seed_cli_paths(variable: str, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, f"/opt/{kind}/bin/cli")
    agents = load_settings().agents
    assert agents.kind(kind).cli_path == f"/opt/{kind}/bin/cli"
    # Only that kind moves; the rest of its section keeps the defaults.
    assert agents.kind(kind).timeout == 1800
    for other in AGENT_KINDS:
        if other != kind:
            assert agents.kind(other) == KindSettings(cli_path=_DEFAULT_CLIS[other])
    monkeypatch.setenv(f"AGENTPLEX_AGENTS__{kind.upper()}__CLI_PATH", "/usr/local/bin/mine")
    assert load_settings().agents.kind(kind).cli_path == "/usr/local/bin/mine"


@pytest.mark.parametrize(("value", "level"), [("true", "DEBUG"), ("1", "DEBUG"), ("false", "INFO")])
def test_seed_debug(value: str, level: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEBUG", value)
    assert load_settings().logging.level == level


def test_agentplex_logging_level_beats_seed_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEBUG", "true")
    monkeypatch.setenv("AGENTPLEX_LOGGING__LEVEL", "WARNING")
    assert load_settings().logging.level == "WARNING"


# 5. Per-kind agent settings


def test_kind_defaults() -> None:
    agents = load_settings().agents
    assert sorted(agents.kinds) == sorted(_DEFAULT_CLIS)
    for kind, cli in _DEFAULT_CLIS.items():
        settings = agents.kind(kind)
        assert settings.cli_path == cli
        assert settings == KindSettings(cli_path=cli)
        assert (settings.max_concurrent_tasks, settings.sandbox, settings.timeout) == (
            1,
            True,
            1800,
        )


def test_kind_override_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_AGENTS__CODEX__TIMEOUT", "600")
    monkeypatch.setenv("AGENTPLEX_AGENTS__CODEX__SANDBOX", "false")
    codex = load_settings().agents.kind("codex")
    assert codex.timeout == 600.0 and isinstance(codex.timeout, float)
    assert codex.sandbox is False
    assert codex.cli_path == "codex"  # the rest of the kind's section stays
    assert load_settings().agents.kind("opencode").timeout == 1800


def test_kind_override_from_a_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "agentplex.toml"
    path.write_text(
        "[default.agents.gemini_cli]\n"
        'cli_path = "/opt/gemini/bin/gemini"\n'
        "max_concurrent_tasks = 3\n"
        'extra_args = "--model pro"\n'
    )
    gemini = load_settings(config_file=path).agents.kind("gemini_cli")
    assert gemini.cli_path == "/opt/gemini/bin/gemini"
    assert gemini.max_concurrent_tasks == 3
    assert gemini.extra_args == "--model pro"
    assert gemini.timeout == 1800 and gemini.sandbox is True
    # The environment beats the file, key by key.
    monkeypatch.setenv("AGENTPLEX_AGENTS__GEMINI_CLI__MAX_CONCURRENT_TASKS", "5")
    gemini = load_settings(config_file=path).agents.kind("gemini_cli")
    assert (gemini.max_concurrent_tasks, gemini.cli_path) == (5, "/opt/gemini/bin/gemini")


def test_an_unknown_kind_section_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agentplex.toml"
    path.write_text('[default.agents.nope]\ncli_path = "nope"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(config_file=path)
    message = str(err.value)
    assert "agents.nope" in message
    for kind in AGENT_KINDS:
        assert kind in message


def test_an_unknown_kind_from_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_AGENTS__NOPE__TIMEOUT", "5")
    refused("agents.nope", "claude_code")


@pytest.mark.parametrize(
    ("variable", "value", "fragments"),
    [
        ("AGENTPLEX_AGENTS__CODEX__NOPE", "1", ["unknown setting agents.codex.nope", "cli_path"]),
        ("AGENTPLEX_AGENTS__CODEX__TIMEOUT", "-1", ["agents.codex.timeout", "positive", "-1"]),
        ("AGENTPLEX_AGENTS__CURSOR__TIMEOUT", "0", ["agents.cursor.timeout", "positive"]),
        ("AGENTPLEX_AGENTS__CURSOR__TIMEOUT", "soon", ["agents.cursor.timeout", "float"]),
        (
            "AGENTPLEX_AGENTS__OPENCODE__MAX_CONCURRENT_TASKS",
            "-2",
            ["agents.opencode.max_concurrent_tasks", "positive"],
        ),
    ],
)
def test_bad_kind_settings_are_named(
    variable: str, value: str, fragments: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    refused(*fragments)


# 6. TLS pairing


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ("GRPC_CERT_FILE", "tls.grpc_key_file"),
        ("GRPC_KEY_FILE", "tls.grpc_cert_file"),
        ("WS_CERT_FILE", "tls.ws_key_file"),
        ("WS_KEY_FILE", "tls.ws_cert_file"),
    ],
)
def test_half_a_tls_pair_is_refused(
    given: str, missing: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(f"AGENTPLEX_TLS__{given}", existing(tmp_path, "half.pem"))
    refused(f"setting {missing} is required")


def test_client_ca_needs_the_grpc_certificate(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AGENTPLEX_TLS__GRPC_CLIENT_CA_FILE", existing(tmp_path, "ca.pem"))
    refused("tls.grpc_client_ca_file", "tls.grpc_cert_file")
    monkeypatch.setenv("AGENTPLEX_TLS__GRPC_CERT_FILE", existing(tmp_path, "grpc.crt"))
    monkeypatch.setenv("AGENTPLEX_TLS__GRPC_KEY_FILE", existing(tmp_path, "grpc.key"))
    tls = load_settings().tls
    assert tls.grpc and tls.grpc_client_ca_file.endswith("ca.pem")


@pytest.mark.parametrize(
    "setting",
    [
        "tls.grpc_cert_file",
        "tls.grpc_key_file",
        "tls.grpc_client_ca_file",
        "tls.ws_cert_file",
        "tls.ws_key_file",
        "auth.jwt_public_key_file",
        "auth.jwt_jwks_file",
        "auth.jwt_private_key_file",
    ],
)
def test_a_missing_file_is_named_with_its_path(
    setting: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "not-there.pem"
    section, key = setting.split(".")
    monkeypatch.setenv(f"AGENTPLEX_{section.upper()}__{key.upper()}", str(missing))
    refused(f"setting {setting}", str(missing), "does not exist")


def test_a_folder_is_not_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGENTPLEX_TLS__GRPC_CERT_FILE", str(tmp_path))
    refused("tls.grpc_cert_file", str(tmp_path))


# 7. Values outside their sets


@pytest.mark.parametrize("algorithm", ["none", "HS512", "hs256", "PS256", ""])
def test_jwt_algorithm_outside_the_allowed_set(
    algorithm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTPLEX_AUTH__JWT_ALGORITHM", algorithm)
    refused("auth.jwt_algorithm", "HS256, RS256, ES256", repr(algorithm))


@pytest.mark.parametrize("algorithm", ["HS256", "RS256", "ES256"])
def test_jwt_algorithms_allowed(algorithm: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_AUTH__JWT_ALGORITHM", algorithm)
    assert load_settings().auth.jwt_algorithm == algorithm


@pytest.mark.parametrize("value", ["xml", "JSON", "", "logfmt"])
def test_bad_logging_format(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_LOGGING__FORMAT", value)
    refused("logging.format", repr(value))


@pytest.mark.parametrize("value", ["LOUD", "", "verbose", "Level 5"])
def test_bad_logging_level(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_LOGGING__LEVEL", value)
    refused("logging.level", repr(value))


@pytest.mark.parametrize("value", ["DEBUG", "info", "WARNING", "ERROR"])
def test_good_logging_levels(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_LOGGING__LEVEL", value)
    assert load_settings().logging.level == value


# 8. The effective settings, without their secrets


def test_effective_redacts_the_jwt_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_AUTH__JWT_SECRET", STRONG_SECRET)
    shown = effective(load_settings())
    assert shown["auth"]["jwt_secret"] == "***"
    assert STRONG_SECRET not in json.dumps(shown)
    # Nothing to hide: shown as it is (empty), not as "***".
    monkeypatch.delenv("AGENTPLEX_AUTH__JWT_SECRET")
    assert effective(load_settings())["auth"]["jwt_secret"] == ""


def test_effective_redacts_the_seed_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET_KEY", STRONG_SECRET)
    shown = effective(load_settings())
    assert shown["auth"]["jwt_secret"] == "***"
    assert STRONG_SECRET not in json.dumps(shown)


def test_effective_masks_redis_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_ENGINE__REDIS_URL", "redis://:engine-pw-41@redis.internal:6379/0")
    monkeypatch.setenv("AGENTPLEX_REDIS_EDGE__URL", "rediss://edge:edge-pw-42@edge.internal:6380/1")
    shown = effective(load_settings())
    assert shown["engine"]["redis_url"] == "redis://:***@redis.internal:6379/0"
    assert shown["redis_edge"]["url"] == "rediss://edge:***@edge.internal:6380/1"
    dumped = json.dumps(shown)
    assert "engine-pw-41" not in dumped and "edge-pw-42" not in dumped


def test_effective_masks_the_seed_redis_password(monkeypatch: pytest.MonkeyPatch) -> None:
    password = "p@ss:w/rd-43"
    monkeypatch.setenv("REDIS_HOST", "redis.internal")
    monkeypatch.setenv("REDIS_PASSWORD", password)
    shown = effective(load_settings())
    assert shown["engine"]["redis_url"] == "redis://:***@redis.internal:6379/0"
    dumped = json.dumps(shown)
    for fragment in (password, "p%40ss", "w%2Frd-43", "rd-43"):
        assert fragment not in dumped


@pytest.mark.parametrize(
    "url",
    [
        # redis-py reads a password from the query string as well.
        "redis://redis.internal:6379/0?password=query-pw-44",
        "unix:///run/redis.sock?db=0&password=query-pw-44",
        "redis://user:query-pw-44@redis.internal:6379/0?password=query-pw-44",
        # Unencoded characters a password may hold must not spill it past the mask.
        "redis://:query/pw-44@redis.internal:6379/0",
        "redis://:query#pw-44@redis.internal:6379/0",
        "redis://:query?pw-44@redis.internal:6379/0",
        "redis://:query@pw-44@redis.internal:6379/0",
    ],
)
def test_effective_hides_every_password_form(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_ENGINE__REDIS_URL", url)
    monkeypatch.setenv("AGENTPLEX_REDIS_EDGE__URL", url)
    shown = effective(load_settings())
    dumped = json.dumps(shown)
    assert "pw-44" not in dumped, dumped
    assert "***" in shown["engine"]["redis_url"] and "***" in shown["redis_edge"]["url"]
    assert "redis.internal" in shown["engine"]["redis_url"] or url.startswith("unix://")


def test_effective_leaves_urls_without_passwords_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    for url in ("redis://redis.internal:6379/0", "unix:///run/redis.sock?db=2"):
        monkeypatch.setenv("AGENTPLEX_ENGINE__REDIS_URL", url)
        assert effective(load_settings())["engine"]["redis_url"] == url


@pytest.mark.usefixtures("production_ready")
def test_effective_holds_no_secret_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_ENGINE__NAME", "redis")
    monkeypatch.setenv("AGENTPLEX_ENGINE__REDIS_URL", "rediss://:r3dis-pw-45@redis.internal:6380/0")
    monkeypatch.setenv("AGENTPLEX_REDIS_EDGE__ENABLED", "true")
    settings = load_settings("production")
    shown = effective(settings)
    dumped = json.dumps(shown)
    assert STRONG_SECRET not in dumped and "r3dis-pw-45" not in dumped
    # Every section is shown, every kind with it.
    assert set(shown) == {"env", *(f for f in settings.__dataclass_fields__ if f != "env")}
    assert shown["env"] == "production" and shown["agents"]["codex"]["cli_path"] == "codex"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://user:pw@h/1", "rediss://user:***@h/1"),
        ("redis://:a/b?c#d@h:6379/0", "redis://:***@h:6379/0"),
        ("unix:///s.sock?db=0&password=pw", "unix:///s.sock?db=0&password=***"),
        ("redis://h:6379/0?Password=pw&db=1", "redis://h:6379/0?Password=***&db=1"),
        ("redis://h:6379/0", "redis://h:6379/0"),
    ],
)
def test_masked_url(url: str, shown: str) -> None:
    assert masked_url(url) == shown
