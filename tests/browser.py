"""A real headless Chromium for the tests of l8's web pages (the OpenAPI pages, the dashboard).

Debian's ``chromium`` (installed by ``make servers``) runs once for the session as a test server
(the ``chromium`` fixture: a headless browser with its DevTools endpoint on a free loopback port);
Playwright's own browser download is never used. Each test gets a :class:`WatchedPage` (the
``browser_page`` fixture): Playwright's Python API connected to that browser over CDP, in a fresh
context with no network beyond loopback. Every request to another host is aborted and recorded,
and every console error or uncaught page error is recorded, so a test asserts that a page works
offline and cleanly by calling :meth:`WatchedPage.assert_clean`.

Playwright is started and stopped around each test, not kept for the session: its sync API leaves
its event loop marked running on the thread while it lives, and the asyncio tests that follow
would then refuse to start theirs. Tests that use a page are plain (not ``async``) functions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, Route, sync_playwright

from tests.servers import SubprocessServer

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
TIMEOUT_MS = 15_000


class ChromiumServer(SubprocessServer):
    """Headless Chromium with its DevTools endpoint on ``self.port`` and a profile of its own."""

    name = "chromium"

    @property
    def cdp_url(self) -> str:
        return f"http://{self.address}"

    def command(self, executable: str) -> list[str]:
        assert self.workdir is not None
        return [
            executable,
            "--headless=new",
            "--no-sandbox",  # root in CI and containers; pages are the tests' own
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",  # no update, safe-browsing or sync calls of its own
            "--disable-component-update",
            f"--remote-debugging-address={self.host}",
            f"--remote-debugging-port={self.port}",
            f"--user-data-dir={self.workdir / 'profile'}",
            "about:blank",
        ]

    def is_ready(self) -> bool:
        try:
            return httpx.get(f"{self.cdp_url}/json/version", timeout=0.5).status_code == 200
        except httpx.TransportError:
            return False


@dataclass
class WatchedPage:
    """A page whose outside requests and console errors are recorded."""

    page: Page
    outside_requests: list[str] = field(default_factory=list)
    """Requests to any host but loopback: each was aborted."""
    console_errors: list[str] = field(default_factory=list)
    """Console messages of type ``error`` and uncaught page errors."""

    def assert_clean(self) -> None:
        assert not self.outside_requests, f"the page tried to reach the network: {self.outside_requests}"
        assert not self.console_errors, f"the page logged errors: {self.console_errors}"


def _watch(page: Page) -> WatchedPage:
    watched = WatchedPage(page)

    def offline(route: Route) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:")) or (urlsplit(url).hostname or "") in LOCAL_HOSTS:
            route.continue_()
        else:
            watched.outside_requests.append(url)
            route.abort("internetdisconnected")

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.console_errors.append(f"{message.text} ({message.location.get('url', '')})")

    page.context.route("**/*", offline)
    page.on("console", console)
    page.on("pageerror", lambda error: watched.console_errors.append(f"uncaught: {error}"))
    return watched


@pytest.fixture(scope="session")
def chromium() -> Iterator[ChromiumServer]:
    """One headless Chromium for the session (a missing ``chromium`` fails the tests, never skips
    them: ``make servers`` installs Debian's)."""
    with ChromiumServer() as server:
        yield server


@pytest.fixture
def browser_page(chromium: ChromiumServer) -> Iterator[WatchedPage]:
    """A fresh page in the session's Chromium, with no network beyond loopback."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.connect_over_cdp(chromium.cdp_url)
        context = browser.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield _watch(context.new_page())
        finally:
            context.close()
            browser.close()  # over CDP: disconnects, the session's browser keeps running
