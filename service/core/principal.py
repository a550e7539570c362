"""Who is calling. Every hub operation receives one, so authorization lives once, in the core.
A principal also says where the call came from (transport and peer), for the audit log."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

# Scopes a token may carry (DESIGN.md, security): plain ones, and ones with a channel glob.
PLAIN_SCOPES = frozenset({"agent", "task:submit", "task:read", "admin"})
GLOB_SCOPES = ("publish:", "subscribe:")


def is_scope(scope: str) -> bool:
    return scope in PLAIN_SCOPES or (
        scope.startswith(GLOB_SCOPES) and len(scope.partition(":")[2]) > 0
    )


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller (or the anonymous one while auth is off)."""

    id: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    anonymous: bool = False
    transport: str = ""
    peer: str = ""

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def at(self, transport: str, peer: str) -> Principal:
        """The same caller, seen on `transport` from `peer`."""
        return dataclasses.replace(self, transport=transport, peer=peer)


ANONYMOUS = Principal(
    id="anonymous",
    scopes=frozenset(
        {"agent", "publish:*", "subscribe:*", "subscribe:_*", "task:submit", "task:read"}
    ),
    anonymous=True,
)
