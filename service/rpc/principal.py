"""The caller of a gRPC request. Authentication arrives with the security issue; until then
every caller is the anonymous principal."""

from __future__ import annotations

from typing import Any

import grpc

from agentplex.core.principal import ANONYMOUS, Principal


def principal_of(context: grpc.aio.ServicerContext[Any, Any]) -> Principal:
    return ANONYMOUS
