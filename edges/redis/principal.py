"""Who publishes through the Redis edge's ingress. Redis carries no credentials of its own, so
a client that PUBLISHes on `<prefix>pub:<channel>` may do exactly what the allow-list
(`redis_edge.ingress`) grants: publish on those channels, and nothing else. Redis sessions
authenticate with the token of their hello frame, like every other session."""

from __future__ import annotations

from agentplex.core.principal import ANONYMOUS, Principal


def ingress_principal(auth_enabled: bool, patterns: tuple[str, ...]) -> Principal:
    if not auth_enabled:
        return ANONYMOUS.at("redis", "redis:ingress")
    return Principal(
        id="redis-ingress",
        scopes=frozenset(f"publish:{p}" for p in patterns),
        transport="redis",
        peer="redis:ingress",
    )
