"""Who publishes through the Redis edge. Redis carries no credentials of its own; until the
security issue gives Redis sessions tokens, everything from Redis is the anonymous principal,
decided here only."""

from __future__ import annotations

from agentplex.core.principal import ANONYMOUS, Principal

PRINCIPAL: Principal = ANONYMOUS
