"""The dashboard of a real ``l8 run`` in a real headless Chromium with no network beyond loopback:
the page loads without a console error, shows the components of its resources folder with their
health, its state chart moves once state requests are made, and with an API token set it asks for
the token, refuses a wrong one and shows the dashboard for the right one.

With ``L8_DASHBOARD_SCREENSHOT=1`` the first test writes the README's screenshot
(docs/images/dashboard.png)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.browser import WatchedPage
from tests.e2e.process import L8Launcher, write_component

pytestmark = pytest.mark.e2e

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "dashboard.png"
TOKEN = "dashboard-s3cret"


def write_subscription(folder: Path) -> None:
    document = {
        "apiVersion": "dapr.io/v2alpha1",
        "kind": "Subscription",
        "metadata": {"name": "orders"},
        "spec": {
            "pubsubname": "events",
            "topic": "orders",
            "routes": {
                "rules": [{"match": 'event.type == "big"', "path": "/orders/big"}],
                "default": "/orders",
            },
        },
    }
    (folder / "subscription.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")


def traffic_for_the_screenshot(url: str, seconds: float = 24.0) -> None:
    """A few blocks' requests at a rate that rises and falls, so the charts have a shape."""
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=10) as client:
        while (elapsed := time.monotonic() - started) < seconds:
            wave = 1 + math.sin(elapsed / 3)
            for index in range(int(4 + 8 * wave)):
                client.post("/v1.0/state/orders-store", json=[{"key": f"w{index}", "value": index}])
                client.get(f"/v1.0/state/orders-store/w{index}")
            for _ in range(int(3 * (2 - wave))):
                client.post(
                    "/v1.0-alpha1/lock/locks",
                    json={"resourceId": "r", "lockOwner": "o", "expiryInSeconds": 1},
                )
            client.get("/v1.0/metadata")
            time.sleep(0.1)


def test_the_dashboard_shows_components_and_its_chart_moves(
    l8: L8Launcher, browser_page: WatchedPage, tmp_path: Path
) -> None:
    resources = tmp_path / "resources"
    write_component(resources, "orders-store", "state.in-memory")
    write_component(resources, "events", "pubsub.in-memory")
    write_component(resources, "locks", "lock.in-memory")
    write_subscription(resources)
    config = tmp_path / "l8.yaml"
    config.write_text(
        "rate_limits:\n  rules:\n"
        "    - {name: publish-burst, resource: /v1.0/publish/*, methods: [POST], threshold: 40, interval: 60s}\n",
        encoding="utf-8",
    )
    sidecar = l8(app_id="checkout", resources=[resources], args=["--config", str(config)])
    page = browser_page.page
    page.set_viewport_size({"width": 1440, "height": 1000})
    page.goto(f"{sidecar.url}/dashboard")
    page.locator("#components tr", has_text="orders-store").wait_for()
    row = page.locator("#components tr", has_text="orders-store").inner_text()
    assert "state.in-memory" in row and "UP" in row and "TRANSACTIONAL" in row
    assert page.locator("#app-id").inner_text() == "checkout"
    assert "/orders/big" in page.locator("#subscriptions").inner_text()
    assert page.locator("[data-block=state]").count() == 0  # no state request yet

    with httpx.Client(base_url=sidecar.url, timeout=10) as client:
        for index in range(60):
            saved = client.post("/v1.0/state/orders-store", json=[{"key": f"k{index}", "value": index}])
            assert saved.status_code == 204
            assert client.get(f"/v1.0/state/orders-store/k{index}").status_code == 200
        for index in range(45):  # past the rule's 40: refused, and listed among the errors
            client.post("/v1.0/publish/events/orders", json={"n": index})
        client.post(
            "/v1.0-alpha1/lock/locks", json={"resourceId": "r", "lockOwner": "o", "expiryInSeconds": 5}
        )
        client.get("/v1.0/state/missing-store/k")

    # The state block's request line: drawn (two points or more) with a peak above zero.
    page.wait_for_function(
        """() => {
            const block = document.querySelector('[data-block=state]');
            const line = block?.querySelector('path.line')?.getAttribute('d') || '';
            return Number(block?.dataset.peak || 0) > 0 && line.includes('L');
        }"""
    )
    page.locator("#rate-limits tr", has_text="publish-burst").wait_for()
    limits = page.locator("#rate-limits tr", has_text="publish-burst").inner_text().split()
    assert limits[-2:] == ["40", "5"], limits
    page.locator("#errors tr", has_text="ERR_TOO_MANY_REQUESTS").first.wait_for()
    page.locator("#errors tr", has_text="missing-store").wait_for()
    if os.environ.get("L8_DASHBOARD_SCREENSHOT"):
        traffic_for_the_screenshot(sidecar.url)
        page.wait_for_timeout(2500)  # the last sample on the charts
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
    browser_page.assert_clean()


def test_with_an_api_token_the_page_asks_for_it(
    l8: L8Launcher, browser_page: WatchedPage, tmp_path: Path
) -> None:
    resources = tmp_path / "resources"
    write_component(resources, "orders-store", "state.in-memory")
    sidecar = l8(resources=[resources], env={"DAPR_API_TOKEN": TOKEN})
    page = browser_page.page
    page.goto(f"{sidecar.url}/dashboard")
    page.locator("#login-form").wait_for()
    assert page.locator("#main").is_hidden()
    assert page.locator("#login-error").is_hidden()  # no token tried yet: nothing refused

    page.fill("#token", "not-the-token")
    page.click("#login-form button")
    page.locator("#login-error", has_text="refused").wait_for()
    assert page.locator("#main").is_hidden()
    assert page.evaluate("() => sessionStorage.getItem('l8.dashboard.token')") is None

    page.fill("#token", TOKEN)
    page.click("#login-form button")
    page.locator("#components tr", has_text="orders-store").wait_for()
    assert page.locator("#login").is_hidden()
    assert TOKEN not in page.url
    page.reload()  # the tab keeps the token: no second login
    page.locator("#components tr", has_text="orders-store").wait_for()
    assert page.locator("#login").is_hidden()

    page.click("#logout")
    page.locator("#login-form").wait_for()
    assert page.evaluate("() => sessionStorage.getItem('l8.dashboard.token')") is None
    # Chromium logs each refused poll (401) as a failed resource load; nothing else may appear.
    refused = [e for e in browser_page.console_errors if "401" in e and "/v1.0-alpha1/l8/dashboard" in e]
    assert len(refused) == 2, browser_page.console_errors
    browser_page.console_errors[:] = [e for e in browser_page.console_errors if e not in refused]
    browser_page.assert_clean()
