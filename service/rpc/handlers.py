"""Register servicers from the service descriptors, with two things the generated helpers lack:
responses may be pre-encoded bytes (deliveries are encoded once, not per subscriber), every
call is authenticated before its method runs, and a `HubError` becomes its gRPC status with the
hub's message."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass

from agentplex.errors import HubError
from agentplex.rpc.principal import authenticate
from agentplex.security.auth import Authenticator

log = logging.getLogger("agentplex.rpc")


def _serialize(message: Any) -> bytes:
    return message if type(message) is bytes else message.SerializeToString()


def _guard(
    method: Callable[..., Awaitable[Any]], auth: Authenticator, *, deferrable: bool
) -> Callable[..., Awaitable[Any]]:
    """Authenticate the caller, then run the method; a HubError becomes the call's status."""

    @functools.wraps(method)
    async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            authenticate(auth, context, deferrable=deferrable)
            return await method(request, context)
        except HubError as err:
            await context.abort(err.code, err.message)

    return guarded


def generic_handler(
    descriptor: ServiceDescriptor, servicer: object, auth: Authenticator
) -> grpc.GenericRpcHandler[Any, Any]:
    handlers = {}
    for method in descriptor.methods:
        request_type = GetMessageClass(method.input_type)
        session = method.client_streaming and method.server_streaming
        behaviour = _guard(getattr(servicer, method.name), auth, deferrable=session)
        if session:
            make = grpc.stream_stream_rpc_method_handler
        elif method.server_streaming:
            make = grpc.unary_stream_rpc_method_handler
        else:
            make = grpc.unary_unary_rpc_method_handler
        handlers[method.name] = make(
            behaviour,
            request_deserializer=request_type.FromString,
            response_serializer=_serialize,
        )
    return grpc.method_handlers_generic_handler(descriptor.full_name, handlers)
