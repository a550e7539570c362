"""Settings: packaged defaults, environments, file and AGENTPLEX_<SECTION>__<KEY> overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentplex.config import ENVIRONMENTS, ConfigError, Settings, load_settings
from tests.support.config_env import (  # noqa: F401 (fixtures: clean_environment is autouse)
    clean_environment,
    production_ready,
    refused,
)


def test_packaged_defaults_equal_dataclass_defaults() -> None:
    settings = load_settings()
    assert settings == Settings(env="development")


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.usefixtures("production_ready")
def test_every_environment_loads(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_ENV", env)
    assert load_settings().env == env


@pytest.mark.usefixtures("production_ready")
def test_env_argument_beats_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_ENV", "staging")
    assert load_settings("production").env == "production"


@pytest.mark.parametrize("value", ["prod", "Production", "test", " development"])
def test_invalid_environment(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_ENV", value)
    message = refused("AGENTPLEX_ENV", repr(value))
    for env in ENVIRONMENTS:
        assert env in message


def test_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_SESSION__GRACE_PERIOD", "30")
    monkeypatch.setenv("AGENTPLEX_SESSION__ACK_TIMEOUT", "0.5")
    monkeypatch.setenv("AGENTPLEX_LIMITS__MAX_BATCH", "5")
    monkeypatch.setenv("AGENTPLEX_SERVER__HOST", "0.0.0.0")
    monkeypatch.setenv("AGENTPLEX_SERVER__GRPC_PORT", "0")
    monkeypatch.setenv("AGENTPLEX_CHANNELS__HISTORY_SIZE", "7")
    monkeypatch.setenv("AGENTPLEX_AGENTS__DEFAULT_MAX_CONCURRENT_TASKS", "4")
    s = load_settings()
    assert s.session.grace_period == 30.0 and isinstance(s.session.grace_period, float)
    assert s.session.ack_timeout == 0.5
    assert s.limits.max_batch == 5 and isinstance(s.limits.max_batch, int)
    assert s.server.host == "0.0.0.0"
    assert s.server.grpc_port == 0
    assert s.channels.history_size == 7
    assert s.agents.default_max_concurrent_tasks == 4
    # Untouched keys keep their defaults.
    assert s.session.heartbeat_interval == 10 and s.limits.max_headers == 64


def test_integral_float_is_accepted_for_int(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_LIMITS__MAX_BATCH", "12.0")
    assert load_settings().limits.max_batch == 12


def test_redis_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_ENGINE__NAME", "redis")
    refused("engine.redis_url", "engine.name")
    monkeypatch.setenv("AGENTPLEX_ENGINE__REDIS_URL", "redis://127.0.0.1:1/0")
    s = load_settings()
    assert (s.engine.name, s.engine.redis_url) == ("redis", "redis://127.0.0.1:1/0")


@pytest.mark.parametrize(
    ("variable", "value", "fragments"),
    [
        ("AGENTPLEX_LIMITS__NOPE", "1", ["unknown setting limits.nope", "max_batch"]),
        ("AGENTPLEX_SESSION__GRACE", "1", ["unknown setting session.grace", "grace_period"]),
        ("AGENTPLEX_LIMITS__MAX_BATCH", "abc", ["limits.max_batch", "'abc'", "int"]),
        ("AGENTPLEX_LIMITS__MAX_BATCH", "1.5", ["limits.max_batch", "int"]),
        ("AGENTPLEX_LIMITS__MAX_BATCH", "[1, 2]", ["limits.max_batch", "int"]),
        ("AGENTPLEX_SESSION__GRACE_PERIOD", "soon", ["session.grace_period", "float"]),
        ("AGENTPLEX_LIMITS__MAX_BATCH", "-1", ["limits.max_batch", "positive", "-1"]),
        ("AGENTPLEX_LIMITS__SESSION_QUEUE", "0", ["limits.session_queue", "positive"]),
        ("AGENTPLEX_SESSION__TICK", "0", ["session.tick", "positive"]),
        ("AGENTPLEX_CHANNELS__HISTORY_TTL", "-5", ["channels.history_ttl", "positive"]),
        ("AGENTPLEX_SERVER__GRPC_PORT", "70000", ["server.grpc_port", "65535"]),
        ("AGENTPLEX_SERVER__WS_PORT", "-1", ["server.ws_port"]),
        ("AGENTPLEX_SERVER__MAX_MESSAGE_BYTES", "0", ["server.max_message_bytes"]),
        ("AGENTPLEX_ENGINE__NAME", "postgres", ["engine.name", "'postgres'"]),
        (
            "AGENTPLEX_SESSION__HEARTBEAT_TIMEOUT",
            "10",
            ["session.heartbeat_timeout", "session.heartbeat_interval"],
        ),
        ("AGENTPLEX_SESSION__HEARTBEAT_INTERVAL", "31", ["session.heartbeat_timeout"]),
        ("AGENTPLEX_SERVER__NODE_ID", "node one", ["server.node_id", "'node one'"]),
        ("AGENTPLEX_SERVER__NODE_ID", "n" * 191, ["server.node_id", "1 to 190 characters"]),
    ],
)
def test_bad_settings_are_named(
    variable: str, value: str, fragments: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    refused(*fragments)


@pytest.mark.usefixtures("production_ready")
def test_config_file_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "agentplex.toml"
    path.write_text(
        "[default.limits]\nmax_batch = 7\nmax_headers = 9\n\n"
        "[production.limits]\nmax_batch = 70\n\n"
        "[default.session]\ngrace_period = 5\n"
    )
    dev = load_settings(config_file=path)
    assert (dev.limits.max_batch, dev.limits.max_headers, dev.session.grace_period) == (7, 9, 5.0)
    assert load_settings("production", config_file=path).limits.max_batch == 70
    monkeypatch.setenv("AGENTPLEX_LIMITS__MAX_BATCH", "8")  # environment beats the file
    assert load_settings(config_file=path).limits.max_batch == 8
    # Command-line overrides beat everything.
    top = load_settings(config_file=path, overrides={"limits": {"max_batch": 9}})
    assert top.limits.max_batch == 9
    assert top.limits.max_headers == 9


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(config_file=tmp_path / "nope.toml")
    assert "nope.toml" in str(err.value) and "does not exist" in str(err.value)


def test_unknown_key_in_config_file(tmp_path: Path) -> None:
    path = tmp_path / "agentplex.toml"
    path.write_text("[default.session]\ngrace = 5\n")
    with pytest.raises(ConfigError) as err:
        load_settings(config_file=path)
    assert "session.grace" in str(err.value)


def test_bad_override_is_named() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(overrides={"server": {"grpc_port": "http"}})
    assert "server.grpc_port" in str(err.value)


def test_boolean_is_not_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_LIMITS__MAX_BATCH", "true")
    refused("limits.max_batch")


def test_scalar_section_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_LIMITS", "5")
    refused("limits")


def test_unknown_section_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_SESION__GRACE_PERIOD", "30")
    refused("sesion")


@pytest.mark.parametrize(
    "text, named",
    [
        ("[engine]\nname = 'redis'\n", "[default.engine]"),
        ("[produciton.engine]\nname = 'redis'\n", "neither an environment"),
        ("[default.engine\n", "config file"),  # not TOML
    ],
)
def test_a_misplaced_section_in_a_config_file_is_refused(
    tmp_path: Path, text: str, named: str
) -> None:
    path = tmp_path / "agentplex.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_settings(config_file=path)
    assert named in str(refused.value)
