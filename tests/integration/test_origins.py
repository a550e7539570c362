"""The Origin check on the WebSocket port, over real sockets: a page of a foreign origin gets 403
naming server.allowed_origins, on the session upgrade and on the dashboard alike; listed
origins, the hub's own pages, clients that send no Origin and, with "*", anyone get through;
in a real browser, the dashboard served over https connects with production's empty list."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from agentplex.config import ConfigError, load_settings
from agentplex.node import HubNode
from tests.support.certs import make_certs
from tests.support.http import get, http_url
from tests.support.hubs import fast_settings
from tests.support.ws_sessions import answer

CHROMIUM = "/usr/bin/chromium"
APP = "https://app.example.com"
FOREIGN = "https://evil.example"
Starter = Callable[[str], Awaitable[HubNode]]


@pytest.fixture
async def hub_with() -> AsyncIterator[Starter]:
    """Start a node whose server.allowed_origins is the given setting."""
    started: list[HubNode] = []

    async def start(allowed_origins: str) -> HubNode:
        node = HubNode(fast_settings(server={"allowed_origins": allowed_origins}))
        await node.start()
        started.append(node)
        return node

    yield start
    for node in started:
        await node.stop(grace=0.5)


def refusal(origin: str | None) -> str:
    """The body of a 403: one line naming the origin and the setting."""
    return f"origin {origin} is not allowed: add it to server.allowed_origins\n"


async def session_opens(node: HubNode, origin: str | None) -> bool:
    """Whether a session sending `origin` (None: no Origin header) says hello and is welcomed;
    False when the upgrade is refused, which must be a 403 naming the setting."""
    try:
        url, sent = f"{node.ws_url}/v1/connect", Origin(origin) if origin else None
        async with connect(url, origin=sent) as ws:
            await ws.send(json.dumps({"ref": "h", "hello": {}}))
            return "welcome" in await answer(ws, "h")
    except InvalidStatus as refused:
        response = refused.response
        assert (response.status_code, response.body.decode()) == (403, refusal(origin))
        return False


async def page_opens(node: HubNode, origin: str | None) -> bool:
    """Whether the dashboard page at / is served to a request sending `origin`."""
    status, body = await get(http_url(node), origin=origin)
    if status == 403:
        assert body == refusal(origin)
        return False
    assert status == 200 and "<html" in body.lower()
    return True


async def opens(node: HubNode, origin: str | None) -> bool:
    """The session upgrade and the dashboard agree on `origin`."""
    session, page = await session_opens(node, origin), await page_opens(node, origin)
    assert session == page
    return session


async def test_a_foreign_origin_is_refused_and_a_listed_one_accepted(hub_with: Starter) -> None:
    node = await hub_with(f"{APP}, http://localhost:3000")
    assert not await opens(node, FOREIGN)
    assert await opens(node, APP)
    assert await opens(node, "http://localhost:3000")


async def test_an_empty_list_accepts_only_the_hubs_own_pages(hub_with: Starter) -> None:
    node = await hub_with("")
    own = http_url(node, "")
    assert own.startswith("http://127.0.0.1:")
    assert await opens(node, own)
    assert not await opens(node, FOREIGN)


async def test_a_request_without_origin_is_accepted(hub_with: Starter) -> None:
    node = await hub_with(APP)
    assert await opens(node, None)


async def test_a_star_accepts_any_origin(hub_with: Starter) -> None:
    node = await hub_with("*")
    assert await opens(node, FOREIGN)
    assert await opens(node, "null")


async def test_an_entry_that_is_no_origin_is_refused_at_load_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTPLEX_SERVER__ALLOWED_ORIGINS", "https://ok.example, app.example.com")
    with pytest.raises(ConfigError, match=r"server\.allowed_origins: 'app\.example\.com'"):
        load_settings("development")


async def test_the_dashboard_over_https_connects_with_only_its_own_origin_allowed(
    tmp_path: Path,
) -> None:
    """What production does by default, in headless Chromium: the page's wss:// upgrade carries
    its https:// origin, which matches the Host it was served from."""
    async_api = pytest.importorskip("playwright.async_api", reason="in the test extra")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    certs = make_certs(tmp_path)
    tls = {"ws_cert_file": certs.server.cert, "ws_key_file": certs.server.key}
    settings = fast_settings(server={"allowed_origins": ""}, tls=tls)
    async with HubNode(settings) as node, async_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = await browser.new_page(ignore_https_errors=True)
            await page.goto(http_url(node))
            assert page.url.startswith("https://127.0.0.1:")
            await page.wait_for_selector("#connection[data-state=connected]", timeout=10_000)
        finally:
            await browser.close()
