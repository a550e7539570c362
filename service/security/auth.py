"""Authentication, once for every transport: a bearer token (from gRPC metadata, a WebSocket
header or query parameter, or a hello frame) becomes a principal, or the call is refused with
UNAUTHENTICATED and the failure is audited.

A verified token is remembered (per connection) until it expires, so a client that sends its
token with every call pays for the signature check once, not per call.
"""

from __future__ import annotations

import time

from agentplex import audit
from agentplex.config import AuthSettings
from agentplex.core.principal import ANONYMOUS, Principal
from agentplex.errors import Unauthenticated
from agentplex.security.tokens import TokenVerifier, principal_from

CACHE_SIZE = 10_000


def bearer(header: str) -> str:
    """The token of an `Authorization: Bearer <token>` header ("" when there is none)."""
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class Authenticator:
    def __init__(self, auth: AuthSettings) -> None:
        self.enabled = auth.enabled
        self._verifier = TokenVerifier(auth) if auth.enabled else None
        self._leeway = auth.leeway
        # (token, transport, peer) -> (principal, expiry): one verification per connection.
        self._cache: dict[tuple[str, str, str], tuple[Principal, float]] = {}

    def authenticate(self, token: str, transport: str, peer: str) -> Principal:
        """The principal `token` stands for, seen on `transport` from `peer`."""
        key = (token, transport, peer)
        cached = self._cache.get(key)
        if cached is not None and time.time() < cached[1]:
            return cached[0]
        if self._verifier is None:
            principal, expiry = ANONYMOUS.at(transport, peer), float("inf")
        else:
            try:
                if not token:
                    raise Unauthenticated(
                        "missing bearer token (auth.enabled): send 'authorization: Bearer "
                        "<token>' or the token in the hello frame"
                    )
                claims = self._verifier.claims(token)
            except Unauthenticated as err:
                audit.record(
                    "auth.failed", None, transport=transport, peer=peer, reason=err.message
                )
                raise
            principal = principal_from(claims).at(transport, peer)
            expiry = float(claims["exp"]) + self._leeway
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = (principal, expiry)
        return principal
