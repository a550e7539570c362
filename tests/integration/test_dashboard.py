"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): the page served
by the hub shows, live and without reloading, an agent that registers and a task it completes."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator

import pytest

from agentplex.client import Client
from agentplex.client.tasks import TaskContext
from agentplex.config import Settings
from agentplex.node import HubNode
from agentplex.v1 import agent_pb2
from tests.support.hubs import fast_settings

CHROMIUM = "/usr/bin/chromium"
async_api = pytest.importorskip("playwright.async_api", reason="playwright is in the test extra")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)


@pytest.fixture
def settings() -> Settings:
    return fast_settings()  # the page is the same on both engines: memory is enough


@pytest.fixture
async def page(node: HubNode) -> AsyncIterator[async_api.Page]:
    async with async_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(node.ws_url.replace("ws://", "http://") + "/")
            await page.wait_for_selector("#connection[data-state=connected]", timeout=10_000)
            await page.evaluate("window.loadedOnce = true")  # gone if the page reloads
            yield page
            assert not errors, errors
        finally:
            await browser.close()


AGE = re.compile(r"^(\d+s|\d+m\d\ds|\d+h\d\dm)$")  # 4s, 2m05s, 1h03m


def cell(kind: str, key: str, field: str) -> str:
    return f'tr[data-{kind}="{key}"] td[data-field="{field}"]'


async def test_the_page_shows_an_agent_register_and_its_task_complete(
    page: async_api.Page, client: Client
) -> None:
    expect = async_api.expect
    card = agent_pb2.AgentCard(
        id="dash-agent",
        kind=agent_pb2.AGENT_KIND_CLAUDE_CODE,
        capabilities=["python", "review"],
        max_concurrent_tasks=2,
    )
    release = asyncio.Event()

    async def work(task: TaskContext) -> str:
        await release.wait()
        return "reviewed"

    async with client.session(card) as session:
        session.on_task(work)
        await expect(page.locator(cell("agent", "dash-agent", "status"))).to_have_text("ONLINE")
        await expect(page.locator(cell("agent", "dash-agent", "kind"))).to_have_text("claude_code")
        await expect(page.locator(cell("agent", "dash-agent", "capabilities"))).to_have_text(
            "python, review"
        )
        handle = await client.submit("check this", require=["review"])
        await expect(page.locator(cell("task", handle.id, "state"))).to_have_text("WORKING")
        await expect(page.locator(cell("task", handle.id, "agent"))).to_have_text("dash-agent")
        await expect(page.locator(cell("task", handle.id, "age"))).to_have_text(AGE)
        await expect(page.locator(cell("agent", "dash-agent", "load"))).to_have_text("1/2")
        release.set()
        assert (await handle.result()).data == b"reviewed"
        await expect(page.locator(cell("task", handle.id, "state"))).to_have_text("COMPLETED")
        await expect(page.locator(cell("task", handle.id, "attempt"))).to_have_text("1")
        await expect(page.locator(cell("agent", "dash-agent", "load"))).to_have_text("0/2")
        for i in range(3):
            await client.publish("demo.chat", f"hello {i}")
        await client.publish("demo.chat", "hello from python")
        await expect(page.locator(cell("channel", "demo.chat", "last"))).to_have_text(
            "hello from python"
        )
        await expect(page.locator(cell("channel", "demo.chat", "total"))).to_have_text("4")
        rate = cell("channel", "demo.chat", "rate")
        await page.wait_for_function(
            "selector => Number(document.querySelector(selector)?.textContent) > 0",
            arg=rate,
            timeout=5_000,
        )  # four messages within the last five seconds
        await expect(page.locator(rate)).to_have_text(re.compile(r"^\d+\.\d$"))
    await expect(page.locator('tr[data-agent="dash-agent"]')).to_have_count(0)  # it left
    await expect(page.locator("#history")).to_have_text("")  # the replays were complete
    assert await page.evaluate("window.loadedOnce") is True, "the page did not reload"


async def test_the_page_and_the_client_modules_are_served(node: HubNode) -> None:
    async with async_api.async_playwright() as playwright:
        request = await playwright.request.new_context()
        base = node.ws_url.replace("ws://", "http://")
        for path, content_type in (
            ("/", "text/html"),
            ("/dashboard.js", "text/javascript"),
            ("/js/agentplex.js", "text/javascript"),
            ("/js/session.js", "text/javascript"),
        ):
            reply = await request.get(base + path)
            assert reply.status == 200 and reply.headers["content-type"].startswith(content_type)
        assert (await request.get(base + "/js/missing.js")).status == 404
        await request.dispose()
