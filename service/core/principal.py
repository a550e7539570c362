"""Who is calling. Every hub operation receives one, so authorization lives once, in the core."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller (or the anonymous one while auth is off)."""

    id: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    anonymous: bool = False

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes


ANONYMOUS = Principal(
    id="anonymous",
    scopes=frozenset({"agent", "publish:*", "subscribe:*", "task:submit", "task:read"}),
    anonymous=True,
)
