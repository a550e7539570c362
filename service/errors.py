"""Errors the hub raises, each carrying the gRPC status code every transport reports.

Messages are written for the person who sent the bad input: they name the field, the setting or
the limit involved.
"""

from __future__ import annotations

import grpc


class HubError(Exception):
    """An operation refused with a status code and a readable reason."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(HubError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(HubError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(HubError):
    code = grpc.StatusCode.ALREADY_EXISTS


class Unauthenticated(HubError):
    """No token, or one that does not verify: the message says which defect."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(HubError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(HubError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class RateLimited(ResourceExhausted):
    """A token bucket ran dry: `retry_after` seconds until the request would pass."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FailedPrecondition(HubError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class DeadlineExceeded(HubError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unavailable(HubError):
    """The shared state (the engine's Redis) cannot be reached: nothing was accepted, retry."""

    code = grpc.StatusCode.UNAVAILABLE
