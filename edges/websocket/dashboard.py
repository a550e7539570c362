"""The dashboard on the WebSocket port: the page at `/` with its script and style, and the
JavaScript client it runs on under `/js/` (clients/js, shipped as package data). The page talks
to the hub only through the client over `/v1/connect`, like any other WebSocket session."""

from __future__ import annotations

from http import HTTPStatus
from importlib.resources import files
from importlib.resources.abc import Traversable

from websockets.http11 import Request, Response

from agentplex.edges.websocket.http import Route, response
from agentplex.hub import Hub

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


def _static(resource: Traversable) -> Route:
    body = resource.read_bytes()
    content_type = _TYPES[resource.name[resource.name.rindex(".") :]]

    async def serve(hub: Hub, request: Request) -> Response:
        return response(HTTPStatus.OK, body, content_type)

    return serve


def dashboard_routes() -> dict[str, Route]:
    """Path → route for the page, its files and the JavaScript client's modules."""
    page = files("agentplex.edges.websocket").joinpath("static")
    client = files("agentplex.jsclient")
    routes = {"/": _static(page.joinpath("index.html"))}
    for name in ("dashboard.js", "dashboard.css"):
        routes[f"/{name}"] = _static(page.joinpath(name))
    for module in client.iterdir():
        if module.name.endswith(".js"):
            routes[f"/js/{module.name}"] = _static(module)
    return routes
