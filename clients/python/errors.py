"""Errors the SDK raises: the hub's status code and message, unchanged."""

from __future__ import annotations

import grpc


class HubError(Exception):
    """The hub refused a request; `code` is the gRPC status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    @classmethod
    def from_rpc(cls, err: grpc.RpcError) -> HubError:
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        details = err.details() if hasattr(err, "details") else str(err)
        return cls(code, details or "")


class SessionClosed(Exception):
    """The session ended for good (goodbye, or the hub refused it)."""


_CODES = {code.value[0]: code for code in grpc.StatusCode}


def status_from_number(number: int) -> grpc.StatusCode:
    return _CODES.get(number, grpc.StatusCode.UNKNOWN)
