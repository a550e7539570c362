"""JWT bearer tokens: verify one into a principal, or mint one for an operator.

HS256 uses `auth.jwt_secret`; RS256 and ES256 verify with `auth.jwt_public_key_file` or a key
of `auth.jwt_jwks_file` (chosen by the token's `kid`) and sign with `auth.jwt_private_key_file`.
Only the configured algorithm is accepted, so `alg: none` and algorithm swaps fail. Scopes come
from the `scope` claim (space-separated, as in RFC 8693) or a `scopes` list.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jwt

from agentplex.config import AuthSettings
from agentplex.core.principal import Principal, is_scope
from agentplex.errors import Unauthenticated


class TokenError(ValueError):
    """A token cannot be minted as asked (an unknown scope, no signing key)."""


def _describe(err: jwt.PyJWTError, auth: AuthSettings) -> str:
    """What is wrong with a token, in words its holder can act on."""
    if isinstance(err, jwt.ExpiredSignatureError):
        return "token expired (exp is in the past)"
    if isinstance(err, jwt.ImmatureSignatureError):
        return "token not valid yet (nbf or iat is in the future)"
    if isinstance(err, jwt.InvalidAudienceError):
        return f"token audience is not {auth.audience!r} (auth.audience)"
    if isinstance(err, jwt.InvalidIssuerError):
        return f"token issuer is not {auth.issuer!r} (auth.issuer)"
    if isinstance(err, jwt.InvalidSignatureError):
        return "token signature does not verify (signed with another key or secret)"
    if isinstance(err, jwt.InvalidAlgorithmError):
        return f"token algorithm is not allowed (auth.jwt_algorithm is {auth.jwt_algorithm})"
    if isinstance(err, jwt.MissingRequiredClaimError):
        return f"token lacks the {err.claim!r} claim"
    if isinstance(err, jwt.PyJWKError | jwt.PyJWKSetError):
        return f"token key is not in auth.jwt_jwks_file ({err})"
    return f"malformed token ({err})"


class TokenVerifier:
    def __init__(self, auth: AuthSettings) -> None:
        self.auth = auth
        self._algorithms = [auth.jwt_algorithm]
        self._jwks: jwt.PyJWKSet | None = None
        self._key: Any = auth.jwt_secret
        if auth.jwt_algorithm != "HS256":
            if auth.jwt_jwks_file:
                self._jwks = jwt.PyJWKSet.from_json(Path(auth.jwt_jwks_file).read_text())
            else:
                self._key = Path(auth.jwt_public_key_file).read_bytes()

    def _key_for(self, token: str) -> Any:
        if self._jwks is None:
            return self._key
        kid = jwt.get_unverified_header(token).get("kid")
        keys = self._jwks.keys
        if kid is None and len(keys) == 1:
            return keys[0].key
        return self._jwks[str(kid)].key

    def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of `token`; Unauthenticated naming the defect otherwise."""
        auth = self.auth
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key_for(token),
                algorithms=self._algorithms,
                audience=auth.audience or None,
                issuer=auth.issuer or None,
                leeway=auth.leeway,
                options={"require": ["exp", "sub"]},
            )
        except (jwt.PyJWTError, KeyError) as err:
            if isinstance(err, KeyError):
                raise Unauthenticated("token key id (kid) is not in auth.jwt_jwks_file") from None
            raise Unauthenticated(_describe(err, auth)) from None
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise Unauthenticated("token sub claim must be a non-empty string")
        return claims


def principal_from(claims: dict[str, Any]) -> Principal:
    scopes: Iterable[Any] = ()
    if isinstance(claims.get("scope"), str):
        scopes = claims["scope"].split()
    elif isinstance(claims.get("scopes"), list):
        scopes = claims["scopes"]
    return Principal(id=claims["sub"], scopes=frozenset(s for s in scopes if isinstance(s, str)))


def issue(auth: AuthSettings, sub: str, scopes: Iterable[str], ttl: float | None = None) -> str:
    """A token for `sub` with `scopes`, valid for `ttl` seconds (auth.token_ttl by default)."""
    scopes = list(scopes)
    unknown = [s for s in scopes if not is_scope(s)]
    if unknown:
        raise TokenError(
            f"unknown scope {unknown[0]!r}: use agent, publish:<glob>, subscribe:<glob>, "
            "task:submit, task:read or admin"
        )
    if not sub:
        raise TokenError("--sub must not be empty")
    if auth.jwt_algorithm == "HS256":
        if not auth.jwt_secret:
            raise TokenError("auth.jwt_secret (or JWT_SECRET_KEY) is not set: nothing to sign with")
        key: Any = auth.jwt_secret
    elif auth.jwt_private_key_file:
        key = Path(auth.jwt_private_key_file).read_bytes()
    else:
        raise TokenError(f"{auth.jwt_algorithm} tokens are signed with auth.jwt_private_key_file")
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "scope": " ".join(scopes),
        "iat": now,
        "nbf": now,
        "exp": now + int(ttl if ttl is not None else auth.token_ttl),
        "jti": uuid.uuid4().hex,
    }
    if auth.audience:
        claims["aud"] = auth.audience
    if auth.issuer:
        claims["iss"] = auth.issuer
    return jwt.encode(claims, key, algorithm=auth.jwt_algorithm)
