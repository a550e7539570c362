"""The WebSocket edge: `ws://HOST:WS_PORT/v1/connect` (`wss://` with TLS on the port) carries
the session protocol (see connection.py); the same HTTP port answers other paths through
`routes`. Every request, upgrade or not, first passes the Origin check (origins.py)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from agentplex.core.origins import Origins, refusal
from agentplex.edges.websocket.connection import SUBPROTOCOLS, serve_websocket
from agentplex.edges.websocket.dashboard import dashboard_routes
from agentplex.edges.websocket.http import Route, answer, forbidden
from agentplex.edges.websocket.metrics import metrics
from agentplex.hub import Hub
from agentplex.security.tls import server_context

log = logging.getLogger("agentplex.edges.websocket")

CONNECT_PATH = "/v1/connect"
# permessage-deflate without context takeover either way: no zlib state is kept between
# messages, so an idle session holds no compressor (about 40 KB each otherwise); a small window
# keeps the per-message cost low.
DEFLATE = ServerPerMessageDeflateFactory(
    server_no_context_takeover=True,
    client_no_context_takeover=True,
    server_max_window_bits=12,
    compress_settings={"memLevel": 5},
)
CLOSE_TIMEOUT = 2.0  # seconds a closing peer gets before its connection is dropped
ROUTES: dict[str, Route] = {**dashboard_routes(), "/metrics": metrics}


def _select_subprotocol(ws: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """The client's first choice among ours; none offered (a plain browser socket): JSON."""
    return next((s for s in offered if s in SUBPROTOCOLS), None)


def _header(request: Request, name: str) -> str | None:
    """A header's value, None when absent; repeated, its values joined (which names no
    single origin or host, so the Origin check refuses it)."""
    values = request.headers.get_all(name)
    return ", ".join(values) if values else None


class WebSocketEdge:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.port = 0
        self._server: Server | None = None
        settings = hub.settings
        self.origins = Origins.parse(settings.server.allowed_origins, tls=settings.tls.ws)

    async def start(self, host: str, port: int) -> int:
        session = self.hub.settings.session
        tls = self.hub.settings.tls
        context = server_context(tls, "ws") if tls.ws else None
        try:
            self._server = await serve(
                self._connected,
                host,
                port,
                select_subprotocol=_select_subprotocol,
                process_request=self._route,
                compression=None,  # negotiated by the extension below
                extensions=[DEFLATE],
                max_size=self.hub.settings.server.max_message_bytes,
                ping_interval=session.heartbeat_interval,
                ping_timeout=session.heartbeat_timeout,
                close_timeout=CLOSE_TIMEOUT,
                ssl=context,
            )
        except OSError as err:
            raise OSError(
                f"cannot bind WebSocket on {host}:{port}: {err.strerror} "
                "(--ws-port, server.ws_port)"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _route(self, ws: ServerConnection, request: Request) -> Response | None:
        """Refuse a page of a foreign origin; upgrade on the connect path; answer anything
        else over HTTP."""
        origin = _header(request, "Origin")
        if not self.origins.allows(origin, _header(request, "Host")):
            return forbidden(refusal(origin or ""))
        if urlsplit(request.path).path == CONNECT_PATH:
            return None
        return await answer(ROUTES, self.hub, request)

    async def _connected(self, ws: ServerConnection) -> None:
        await serve_websocket(self.hub, ws)
