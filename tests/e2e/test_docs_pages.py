"""The OpenAPI pages of a real ``l8 run`` work with no network: Swagger UI (``/docs``) and ReDoc
(``/redoc``) load their scripts and styles from l8 itself, in a real headless Chromium whose every
request beyond loopback is aborted, and show the state routes without a console error."""

from __future__ import annotations

import httpx
import pytest

from tests.browser import WatchedPage
from tests.e2e.process import L8Launcher

pytestmark = pytest.mark.e2e

STATE_PATHS = ("/v1.0/state/{storeName}", "/v1.0/state/{storeName}/{key}")


def test_swagger_ui_lists_the_state_routes_offline(l8: L8Launcher, browser_page: WatchedPage) -> None:
    sidecar = l8()
    page = browser_page.page
    page.goto(f"{sidecar.url}/docs")
    page.locator(".opblock-summary-path").first.wait_for()
    paths = set(page.locator(".opblock-summary-path").all_inner_texts())
    shown = {path.replace("\u200b", "").strip() for path in paths}
    assert set(STATE_PATHS) <= shown, sorted(shown)
    assert page.locator(".opblock-tag", has_text="state").count() == 1
    browser_page.assert_clean()


def test_redoc_lists_the_state_routes_offline(l8: L8Launcher, browser_page: WatchedPage) -> None:
    sidecar = l8()
    page = browser_page.page
    page.goto(f"{sidecar.url}/redoc")
    page.locator("h2", has_text="Get a state value").wait_for()
    text = page.locator("body").inner_text()
    shown = {line.strip() for line in text.splitlines()}
    assert set(STATE_PATHS) <= shown, "ReDoc does not show the state routes"
    assert "Something went wrong" not in text
    browser_page.assert_clean()


def test_the_pages_assets_are_served_by_l8(l8: L8Launcher) -> None:
    sidecar = l8()
    for name, kind in (
        ("swagger-ui-bundle.js", "javascript"),
        ("swagger-ui.css", "css"),
        ("redoc.standalone.js", "javascript"),
    ):
        answer = httpx.get(f"{sidecar.url}/docs/assets/{name}", timeout=10)
        assert answer.status_code == 200, name
        assert kind in answer.headers["content-type"], (name, answer.headers["content-type"])
        assert len(answer.content) > 100_000, name
    html = httpx.get(f"{sidecar.url}/docs", timeout=10).text
    assert "cdn.jsdelivr.net" not in html and "/docs/assets/swagger-ui-bundle.js" in html
