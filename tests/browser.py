"""A real headless Chromium for the tests of l8's web pages (the OpenAPI pages, the dashboard).

Debian's ``chromium`` (installed by ``make servers``), driven through Playwright's Python API with
``executable_path``: Playwright's own browser download is never used. One browser runs for the
whole session (the ``chromium`` fixture); each test gets a :class:`WatchedPage` (the ``browser_page``
fixture) in a fresh context that has no network beyond loopback: every request to another host is
aborted and recorded, and every console error or uncaught page error is recorded, so a test asserts
that a page works offline and cleanly by checking both lists are empty.

The tests that use it are plain (not ``async``) functions: Playwright's sync API runs its own loop.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Route, sync_playwright

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
NAVIGATION_TIMEOUT_MS = 15_000


def chromium_binary() -> str:
    """The system Chromium; fails (never skips) when it is missing, naming the install step."""
    for candidate in CHROMIUM_PATHS:
        if Path(candidate).exists():
            return candidate
    found = shutil.which("chromium")
    if found:
        return found
    pytest.fail("Debian's chromium is not installed: `make servers` installs it (apt-get install chromium)")


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


class Chromium:
    """One launched browser; :meth:`open` gives watched pages in contexts of their own."""

    def __init__(self, playwright: Playwright, browser: Browser) -> None:
        self.playwright = playwright
        self.browser = browser

    @classmethod
    def launch(cls) -> Chromium:
        playwright = sync_playwright().start()
        try:
            browser = playwright.chromium.launch(executable_path=chromium_binary(), headless=True)
        except BaseException:
            playwright.stop()
            raise
        return cls(playwright, browser)

    def close(self) -> None:
        try:
            self.browser.close()
        finally:
            self.playwright.stop()

    def open(self) -> WatchedPage:
        context = self.browser.new_context()
        context.set_default_timeout(NAVIGATION_TIMEOUT_MS)
        watched = WatchedPage(context.new_page())

        def offline(route: Route) -> None:
            host = urlsplit(route.request.url).hostname or ""
            if route.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
                route.continue_()
            else:
                watched.outside_requests.append(route.request.url)
                route.abort("internetdisconnected")

        def console(message: ConsoleMessage) -> None:
            if message.type == "error":
                watched.console_errors.append(f"{message.text} ({message.location.get('url', '')})")

        context.route("**/*", offline)
        watched.page.on("console", console)
        watched.page.on("pageerror", lambda error: watched.console_errors.append(f"uncaught: {error}"))
        return watched


@pytest.fixture(scope="session")
def chromium() -> Iterator[Chromium]:
    """One headless Chromium for the session."""
    browser = Chromium.launch()
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def browser_page(chromium: Chromium) -> Iterator[WatchedPage]:
    """A fresh page with no network beyond loopback, closed after the test."""
    watched = chromium.open()
    try:
        yield watched
    finally:
        watched.page.context.close()
