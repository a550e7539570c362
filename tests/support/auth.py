"""Tokens for testing authentication: a hub secret, RSA and EC key pairs with a JWKS file, and
tokens with each defect a client may present."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

SECRET = "s3cr3t-for-tests-only-0123456789-abcdefghijklmnop"
OTHER_SECRET = "another-secret-that-is-long-enough-0123456789-xyz"
AUDIENCE = "agentplex"


def auth_settings(**auth: Any) -> dict[str, Any]:
    """The `auth` section of a hub with HS256 tokens on (override keys with `auth`)."""
    return {"enabled": True, "jwt_algorithm": "HS256", "jwt_secret": SECRET, **auth}


def token(
    sub: str = "alice",
    scopes: str = "agent publish:* subscribe:* task:submit task:read",
    *,
    key: Any = SECRET,
    algorithm: str = "HS256",
    ttl: float = 300,
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    now = int(time.time())
    body: dict[str, Any] = {
        "sub": sub,
        "scope": scopes,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + int(ttl),
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key, algorithm=algorithm, headers=headers)


def unsigned(sub: str = "alice", scopes: str = "admin") -> str:
    """A token with `alg: none`: a header and claims, no signature."""
    import base64

    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    claims = {"sub": sub, "scope": scopes, "aud": AUDIENCE, "exp": int(time.time()) + 300}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


# Each defect a token can have, and what the hub's refusal says about it.
DEFECTS: dict[str, tuple[str, str]] = {
    "missing": ("", "missing bearer token"),
    "malformed": ("not-a-jwt", "malformed token"),
    "expired": ("expired", "token expired"),
    "not_yet_valid": ("nbf", "not valid yet"),
    "wrong_audience": ("aud", "audience"),
    "wrong_key": ("key", "signature does not verify"),
    "alg_none": ("none", "algorithm is not allowed"),
}


def defective(defect: str) -> str:
    kind = DEFECTS[defect][0]
    if kind in ("", "not-a-jwt"):
        return kind
    if kind == "expired":
        return token(ttl=-3600)
    if kind == "nbf":
        return token(nbf=int(time.time()) + 3600)
    if kind == "aud":
        return token(aud="someone-else")
    if kind == "key":
        return token(key=OTHER_SECRET)
    return unsigned()


@dataclass(frozen=True, slots=True)
class KeyPair:
    private: Any
    private_file: str
    public_file: str


def key_pair(folder: Path, algorithm: str, name: str = "hub") -> KeyPair:
    """An RS256 or ES256 key pair as PEM files in `folder`."""
    private = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    private_file, public_file = folder / f"{name}.key", folder / f"{name}.pub"
    private_file.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public_file.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return KeyPair(private, str(private_file), str(public_file))


def jwks_file(folder: Path, pairs: dict[str, KeyPair], algorithm: str) -> str:
    """A JWKS file holding the public keys of `pairs`, by kid."""
    keys = []
    for kid, pair in pairs.items():
        jwk = json.loads(
            jwt.algorithms.get_default_algorithms()[algorithm].to_jwk(pair.private.public_key())
        )
        keys.append({**jwk, "kid": kid, "alg": algorithm, "use": "sig"})
    path = folder / "jwks.json"
    path.write_text(json.dumps({"keys": keys}))
    return str(path)
