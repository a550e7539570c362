"""`agentplex config show`, `agentplex token issue` and `agentplex serve`'s refusal to start,
as an operator runs them: subprocesses with an environment the test controls."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from tests.support.auth import KeyPair, key_pair
from tests.support.config_env import STRONG_SECRET, clean_env

REDIS_PASSWORD = "r3dis-Pass-x9Q"


def agentplex(*args: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
    """`agentplex ARGS` with no AGENTPLEX_* or seed variable but those in `env`."""
    return subprocess.run(
        [sys.executable, "-m", "agentplex", *args],
        capture_output=True,
        text=True,
        env=clean_env(env),
        timeout=timeout,
    )


def one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The process exited 2 with one line on stderr holding every fragment."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def secret() -> str:
    return secrets.token_hex(32)


@pytest.fixture
def secret_env(secret: str) -> dict[str, str]:
    return {
        "AGENTPLEX_AUTH__JWT_SECRET": secret,
        "AGENTPLEX_ENGINE__REDIS_URL": f"redis://:{REDIS_PASSWORD}@redis.internal:6379/0",
    }


# config show


def test_config_show_prints_the_settings_without_secrets(
    secret: str, secret_env: dict[str, str]
) -> None:
    result = agentplex("config", "show", **secret_env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("env = 'development'")
    assert "\n[auth]\n" in out and "\n[agents]\n" in out
    assert 'jwt_secret = "***"' in out
    assert 'redis_url = "redis://:***@redis.internal:6379/0"' in out
    assert 'cli_path = "codex"' in out
    for shown in (out, result.stderr):
        assert secret not in shown and REDIS_PASSWORD not in shown


def test_config_show_json(secret: str, secret_env: dict[str, str]) -> None:
    env = {**secret_env, "AGENTPLEX_SESSION__GRACE_PERIOD": "7"}
    result = agentplex("config", "show", "--json", **env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["env"] == "development"
    assert shown["auth"]["jwt_secret"] == "***"
    assert shown["engine"]["redis_url"] == "redis://:***@redis.internal:6379/0"
    assert shown["session"]["grace_period"] == 7
    assert shown["agents"]["github_copilot"]["cli_path"] == "copilot"
    assert secret not in result.stdout and REDIS_PASSWORD not in result.stdout


def test_the_defaults_are_loopback_the_memory_engine_and_the_documented_ports() -> None:
    """What `agentplex serve` binds with no settings at all: the README's ports on loopback."""
    result = agentplex("config", "show", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["env"] == "development"
    assert shown["engine"]["name"] == "memory"
    server = shown["server"]
    assert (server["host"], server["grpc_port"], server["ws_port"]) == ("127.0.0.1", 50051, 8765)
    assert server["ws_host"] in ("", "127.0.0.1")  # empty: the gRPC host
    assert shown["auth"]["enabled"] is False  # tokens are accepted unchecked until enabled


def test_config_show_follows_the_seed_names(secret: str) -> None:
    result = agentplex(
        "config",
        "show",
        "--json",
        REDIS_HOST="redis.internal",
        REDIS_PASSWORD=REDIS_PASSWORD,
        REDIS_SSL="true",
        JWT_SECRET_KEY=secret,
        GH_CLI_PATH="/opt/gh/copilot",
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["engine"]["redis_url"] == "rediss://:***@redis.internal:6379/0"
    assert shown["auth"]["jwt_secret"] == "***"
    assert shown["agents"]["github_copilot"]["cli_path"] == "/opt/gh/copilot"
    assert secret not in result.stdout and REDIS_PASSWORD not in result.stdout


def test_config_show_production_without_its_settings() -> None:
    result = agentplex("config", "show", "--env", "production")
    one_line_error(result, "agentplex config show:", "auth.jwt_secret")
    assert result.stdout == ""


def test_config_show_production_names_the_next_missing_setting() -> None:
    result = agentplex(
        "config", "show", "--env", "production", AGENTPLEX_AUTH__JWT_SECRET=STRONG_SECRET
    )
    one_line_error(result, "tls.grpc_cert_file")
    assert STRONG_SECRET not in result.stderr


def test_config_show_names_a_bad_setting() -> None:
    result = agentplex("config", "show", AGENTPLEX_AGENTS__CODEX__TIMEOUT="-1")
    one_line_error(result, "agents.codex.timeout")


# token issue


def test_token_issue_mints_a_verifiable_token(secret: str) -> None:
    result = agentplex(
        "token",
        "issue",
        "--sub",
        "alice",
        "--scope",
        "publish:chat.*",
        "--scope",
        "task:submit",
        "--ttl",
        "60",
        AGENTPLEX_AUTH__JWT_SECRET=secret,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.count(".") == 2 and "\n" not in token
    assert secret not in result.stdout
    claims = jwt.decode(token, secret, algorithms=["HS256"], audience="agentplex")
    assert claims["sub"] == "alice"
    assert claims["scope"] == "publish:chat.* task:submit"
    assert claims["exp"] - claims["iat"] == 60
    # Another secret does not verify it.
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, STRONG_SECRET, algorithms=["HS256"], audience="agentplex")


def test_token_issue_uses_the_seed_secret(secret: str) -> None:
    result = agentplex("token", "issue", "--sub", "bob", "--scope", "agent", JWT_SECRET_KEY=secret)
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), secret, algorithms=["HS256"], audience="agentplex")
    assert (claims["sub"], claims["scope"]) == ("bob", "agent")
    assert claims["exp"] - claims["iat"] == 3600  # auth.token_ttl


def test_token_issue_refuses_an_unknown_scope(secret: str) -> None:
    result = agentplex(
        "token",
        "issue",
        "--sub",
        "alice",
        "--scope",
        "task:submit",
        "--scope",
        "launch:missiles",
        AGENTPLEX_AUTH__JWT_SECRET=secret,
    )
    one_line_error(result, "launch:missiles")
    assert result.stdout == ""


def test_token_issue_without_a_secret() -> None:
    result = agentplex("token", "issue", "--sub", "alice", "--scope", "agent")
    one_line_error(result, "auth.jwt_secret")
    assert result.stdout == ""


@pytest.fixture
def rsa_keys(tmp_path: Path) -> KeyPair:
    return key_pair(tmp_path, "RS256")


def test_token_issue_rs256(rsa_keys: KeyPair) -> None:
    result = agentplex(
        "token",
        "issue",
        "--sub",
        "carol",
        "--scope",
        "subscribe:ops.*,task:read",
        "--ttl",
        "120",
        AGENTPLEX_AUTH__JWT_ALGORITHM="RS256",
        AGENTPLEX_AUTH__JWT_PRIVATE_KEY_FILE=rsa_keys.private_file,
        AGENTPLEX_AUTH__JWT_PUBLIC_KEY_FILE=rsa_keys.public_file,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(
        token, Path(rsa_keys.public_file).read_bytes(), algorithms=["RS256"], audience="agentplex"
    )
    assert (claims["sub"], claims["scope"]) == ("carol", "subscribe:ops.* task:read")
    assert claims["exp"] - claims["iat"] == 120


def test_token_issue_rs256_without_a_private_key(rsa_keys: KeyPair) -> None:
    result = agentplex(
        "token",
        "issue",
        "--sub",
        "carol",
        "--scope",
        "agent",
        AGENTPLEX_AUTH__JWT_ALGORITHM="RS256",
        AGENTPLEX_AUTH__JWT_PUBLIC_KEY_FILE=rsa_keys.public_file,
    )
    one_line_error(result, "auth.jwt_private_key_file")


# serve


def test_serve_refuses_production_without_tls(secret: str) -> None:
    result = agentplex(
        "serve",
        "--env",
        "production",
        "--grpc-port",
        "0",
        "--ws-port",
        "0",
        AGENTPLEX_AUTH__JWT_SECRET=secret,
    )
    one_line_error(result, "agentplex serve:", "tls.grpc_cert_file")
    assert secret not in result.stderr + result.stdout


def test_serve_refuses_production_by_environment_variable(secret: str) -> None:
    result = agentplex(
        "serve",
        "--grpc-port",
        "0",
        "--ws-port",
        "0",
        AGENTPLEX_ENV="production",
        AGENTPLEX_AUTH__JWT_SECRET=secret,
    )
    one_line_error(result, "tls.grpc_cert_file")


def test_serve_refuses_a_weak_secret_in_production() -> None:
    result = agentplex(
        "serve",
        "--env",
        "production",
        "--grpc-port",
        "0",
        "--ws-port",
        "0",
        JWT_SECRET_KEY="changeme",
    )
    one_line_error(result, "auth.jwt_secret")
