"""Bearer tokens: every defect refused with a message naming it, every supported algorithm and
key source accepted, scopes read from either claim form, and minted tokens that verify."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from agentplex.client.channel import bearer_metadata
from agentplex.config import AuthSettings
from agentplex.core.principal import Principal
from agentplex.errors import Unauthenticated
from agentplex.security.auth import Authenticator, bearer
from agentplex.security.tokens import TokenError, TokenVerifier, issue, principal_from
from tests.support.auth import DEFECTS, SECRET, defective, jwks_file, key_pair, token

HS256 = AuthSettings(enabled=True, jwt_secret=SECRET)


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_defect_is_refused_and_named(defect: str) -> None:
    auth = Authenticator(HS256)
    with pytest.raises(Unauthenticated) as err:
        auth.authenticate(defective(defect), "grpc", "ipv4:127.0.0.1:1")
    assert DEFECTS[defect][1] in err.value.message


def test_a_good_token_becomes_its_principal_with_where_it_came_from() -> None:
    principal = Authenticator(HS256).authenticate(token("bob", "agent task:read"), "ws", "p:1")
    assert principal == Principal(
        "bob", frozenset({"agent", "task:read"}), transport="ws", peer="p:1"
    )


def test_clock_skew_within_leeway_is_allowed() -> None:
    verifier = TokenVerifier(AuthSettings(enabled=True, jwt_secret=SECRET, leeway=30))
    assert verifier.claims(token(ttl=-10))["sub"] == "alice"  # expired 10 s ago
    assert verifier.claims(token(nbf=int(time.time()) + 10))["sub"] == "alice"
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.claims(token(ttl=-60))


def test_required_claims_and_issuer() -> None:
    verifier = TokenVerifier(AuthSettings(enabled=True, jwt_secret=SECRET, issuer="hub.example"))
    with pytest.raises(Unauthenticated, match="issuer"):
        verifier.claims(token(iss="elsewhere"))
    assert verifier.claims(token(iss="hub.example"))["iss"] == "hub.example"
    plain = TokenVerifier(HS256)
    with pytest.raises(Unauthenticated, match="'sub'"):
        plain.claims(token(sub=None))
    with pytest.raises(Unauthenticated, match="'exp'"):
        plain.claims(token(exp=None))
    with pytest.raises(Unauthenticated, match="sub claim"):
        plain.claims(token(sub=""))


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_public_key_file(algorithm: str, tmp_path: Path) -> None:
    pair = key_pair(tmp_path, algorithm)
    other = key_pair(tmp_path, algorithm, "other")
    auth = AuthSettings(enabled=True, jwt_algorithm=algorithm, jwt_public_key_file=pair.public_file)
    verifier = TokenVerifier(auth)
    assert verifier.claims(token(key=pair.private, algorithm=algorithm))["sub"] == "alice"
    with pytest.raises(Unauthenticated, match="signature"):
        verifier.claims(token(key=other.private, algorithm=algorithm))
    with pytest.raises(Unauthenticated, match="algorithm is not allowed"):
        verifier.claims(token())  # HS256 where RS256/ES256 is configured
    with pytest.raises(Unauthenticated, match="algorithm is not allowed"):
        # The classic swap: HS256 "signed" with the public key as the secret.
        verifier.claims(
            jwt.api_jws.PyJWS().encode(
                b'{"sub":"x","aud":"agentplex","exp":9999999999}',
                b"not-the-private-key-but-long-enough-for-hmac-sha256",
                algorithm="HS256",
            )
        )


def test_jwks_file_picks_the_key_by_kid(tmp_path: Path) -> None:
    one, two = key_pair(tmp_path, "ES256", "one"), key_pair(tmp_path, "ES256", "two")
    path = jwks_file(tmp_path, {"k1": one, "k2": two}, "ES256")
    verifier = TokenVerifier(AuthSettings(enabled=True, jwt_algorithm="ES256", jwt_jwks_file=path))
    for kid, pair in (("k1", one), ("k2", two)):
        signed = token(key=pair.private, algorithm="ES256", headers={"kid": kid})
        assert verifier.claims(signed)["sub"] == "alice"
    with pytest.raises(Unauthenticated, match="signature"):
        verifier.claims(token(key=one.private, algorithm="ES256", headers={"kid": "k2"}))
    with pytest.raises(Unauthenticated, match="kid"):
        verifier.claims(token(key=one.private, algorithm="ES256", headers={"kid": "k9"}))


@pytest.mark.parametrize(
    ("claims", "scopes"),
    [
        ({"sub": "a", "scope": "agent  publish:x.*"}, {"agent", "publish:x.*"}),
        ({"sub": "a", "scopes": ["task:read", 7, "admin"]}, {"task:read", "admin"}),
        ({"sub": "a", "scope": 5}, set()),
        ({"sub": "a"}, set()),
    ],
)
def test_scopes_from_either_claim(claims: dict[str, object], scopes: set[str]) -> None:
    assert principal_from(claims).scopes == scopes


def test_issued_tokens_verify(tmp_path: Path) -> None:
    minted = issue(HS256, "carol", ["publish:chat.*", "task:submit"], ttl=60)
    claims = TokenVerifier(HS256).claims(minted)
    assert (claims["sub"], claims["scope"], claims["exp"] - claims["iat"]) == (
        "carol",
        "publish:chat.* task:submit",
        60,
    )
    pair = key_pair(tmp_path, "RS256")
    rs = AuthSettings(
        enabled=True,
        jwt_algorithm="RS256",
        jwt_public_key_file=pair.public_file,
        jwt_private_key_file=pair.private_file,
    )
    assert TokenVerifier(rs).claims(issue(rs, "dave", ["admin"]))["scope"] == "admin"


@pytest.mark.parametrize(
    ("auth", "sub", "scopes", "message"),
    [
        (HS256, "a", ["publish"], "unknown scope 'publish'"),
        (HS256, "a", ["root"], "unknown scope 'root'"),
        (HS256, "", ["admin"], "--sub"),
        (AuthSettings(), "a", ["admin"], "auth.jwt_secret"),
        (AuthSettings(jwt_algorithm="ES256"), "a", ["admin"], "auth.jwt_private_key_file"),
    ],
)
def test_issue_refuses(auth: AuthSettings, sub: str, scopes: list[str], message: str) -> None:
    with pytest.raises(TokenError, match=message):
        issue(auth, sub, scopes)


def test_a_verified_token_is_remembered_until_it_expires() -> None:
    auth = Authenticator(HS256)
    good = token(ttl=300)
    first = auth.authenticate(good, "grpc", "a")
    second = auth.authenticate(good, "websocket", "b")
    assert (first.id, second.transport, second.peer) == ("alice", "websocket", "b")
    expired = token(ttl=-3600)
    with pytest.raises(Unauthenticated):
        auth.authenticate(expired, "grpc", "a")
    with pytest.raises(Unauthenticated):  # a refusal is not remembered as a success
        auth.authenticate(expired, "grpc", "a")


def test_auth_off_is_the_anonymous_principal() -> None:
    principal = Authenticator(AuthSettings()).authenticate("whatever", "redis", "r")
    assert principal.anonymous and (principal.transport, principal.peer) == ("redis", "r")


@pytest.mark.parametrize(
    ("header", "expected"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", ""), ("", ""), ("abc", "")],
)
def test_bearer_header(header: str, expected: str) -> None:
    assert bearer(header) == expected


@pytest.mark.parametrize("bad", ["a\nb", "tökén", "a\tb"])
def test_the_sdk_refuses_a_token_grpc_cannot_carry(bad: str) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        bearer_metadata(bad)
    assert bearer_metadata("") is None
    assert bearer_metadata("e.y.j") == (("authorization", "Bearer e.y.j"),)
