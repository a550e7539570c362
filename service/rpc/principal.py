"""The caller of a gRPC request: authenticated once per call, before the servicer runs, from
the `authorization: Bearer <token>` metadata; servicers read it with `principal_of`."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import grpc

from agentplex.core.principal import Principal
from agentplex.security.auth import Authenticator, bearer

_caller: ContextVar[Principal | None] = ContextVar("agentplex_caller", default=None)


def token_of(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return bearer(value if isinstance(value, str) else value.decode())
    return ""


def authenticate(
    auth: Authenticator, context: grpc.aio.ServicerContext[Any, Any], *, deferrable: bool
) -> None:
    """Establish the caller of this call. A session stream (`deferrable`) without a token may
    present one in its hello frame instead."""
    if not auth.enabled:
        _caller.set(auth.authenticate("", "grpc", context.peer()))
        return
    token = token_of(context)
    _caller.set(
        None if deferrable and not token else auth.authenticate(token, "grpc", context.peer())
    )


def principal_of(context: grpc.aio.ServicerContext[Any, Any]) -> Principal:
    caller = _caller.get()
    assert caller is not None, "authenticate() runs before every unary servicer method"
    return caller


def presented(context: grpc.aio.ServicerContext[Any, Any]) -> Principal | None:
    """The session stream's caller, or None when its token is to come in the hello frame."""
    return _caller.get()
