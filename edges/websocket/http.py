"""Plain HTTP on the WebSocket port: everything that is not the session upgrade. Each route is
a coroutine from (hub, request) to a Response; `answer` picks one by path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus
from urllib.parse import urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from agentplex.hub import Hub

Route = Callable[[Hub, Request], Awaitable[Response]]


def response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def not_found(path: str) -> Response:
    return response(HTTPStatus.NOT_FOUND, f"no {path} here\n".encode(), "text/plain")


def forbidden(reason: str) -> Response:
    return response(HTTPStatus.FORBIDDEN, f"{reason}\n".encode(), "text/plain")


async def answer(routes: dict[str, Route], hub: Hub, request: Request) -> Response:
    path = urlsplit(request.path).path
    route = routes.get(path)
    if route is None:
        return not_found(path)
    return await route(hub, request)
