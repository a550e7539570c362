"""Plain HTTP(S) requests to a hub's WebSocket port, as a browser or a scraper makes them (in a
thread: the hub may share the test's event loop)."""

from __future__ import annotations

import asyncio
import ssl
import urllib.error
import urllib.request

from agentplex.node import HubNode


def http_url(node: HubNode, path: str = "/") -> str:
    """The node's WebSocket port as an http:// (https:// with TLS) URL."""
    return "http" + node.ws_url.removeprefix("ws") + path


async def get(
    url: str, *, origin: str | None = None, context: ssl.SSLContext | None = None
) -> tuple[int, str]:
    """(status, body) of GET `url`, sending `origin` as the Origin header when given."""
    return await asyncio.to_thread(_get, url, origin, context)


def _get(url: str, origin: str | None, context: ssl.SSLContext | None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Origin": origin} if origin else {})
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as refused:
        with refused:
            return refused.code, refused.read().decode()
