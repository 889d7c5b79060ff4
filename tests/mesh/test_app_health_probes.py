"""Dapr's app health probes (mesh/app_health.py) against a real HTTP app whose answers are
programmed: 2xx healthy, the threshold of failures in a row, one success to recover, the timeout,
no app token on the probe, and the listeners called once per change."""

from __future__ import annotations

import asyncio

import pytest

from mesh.app_health import AppHealth, AppHealthSettings, AppStatus, HealthTracker, go_duration
from tests.subscriber_app import Response, SubscriberApp


def test_the_tracker_counts_failures_in_a_row_and_recovers_on_one_success() -> None:
    tracker = HealthTracker(3)
    assert tracker.status is AppStatus.UNKNOWN
    assert tracker.report(True) is AppStatus.HEALTHY
    assert tracker.report(True) is None
    assert tracker.report(False) is None
    assert tracker.report(False) is None
    assert tracker.report(True) is None  # a success in between starts the count again
    assert tracker.report(False) is None
    assert tracker.report(False) is None
    assert tracker.report(False) is AppStatus.UNHEALTHY
    assert tracker.report(False) is None  # reported once
    assert tracker.report(True) is AppStatus.HEALTHY


def test_an_app_that_never_answered_becomes_unhealthy_after_the_threshold() -> None:
    tracker = HealthTracker(2)
    assert tracker.report(False) is None
    assert tracker.status is AppStatus.UNKNOWN
    assert tracker.report(False) is AppStatus.UNHEALTHY


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.5, "500ms"), (5.0, "5s"), (1.5, "1.5s"), (90.0, "1m30s"), (3600.0, "1h0m0s"), (0.0, "0s")],
)
def test_durations_are_written_as_go_writes_them(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_the_metadata_shape_is_daprs() -> None:
    assert AppHealthSettings().describe() == {
        "healthCheckPath": "/healthz",
        "healthProbeInterval": "5s",
        "healthProbeTimeout": "500ms",
        "healthThreshold": 3,
    }


async def test_probes_follow_the_apps_answers_and_tell_listeners_each_change() -> None:
    async with SubscriberApp() as app, app.channel(app_api_token="app-secret") as channel:
        health = AppHealth(
            channel, AppHealthSettings(path="/health", interval=0.05, timeout=0.5, threshold=2)
        )
        seen: list[AppStatus] = []

        async def listener(status: AppStatus) -> None:
            seen.append(status)

        health.on_change(listener)
        app.respond("/health", 204)
        assert await health.probe_once() is AppStatus.HEALTHY
        app.respond("/health", 503)
        assert await health.probe_once() is None
        assert health.status is AppStatus.HEALTHY
        assert await health.probe_once() is AppStatus.UNHEALTHY
        app.respond("/health", 299)
        assert await health.probe_once() is AppStatus.HEALTHY
        assert seen == [AppStatus.HEALTHY, AppStatus.UNHEALTHY, AppStatus.HEALTHY]
        probes = app.received("/health")
        assert {d.method for d in probes} == {"GET"}
        assert all("dapr-api-token" not in d.headers for d in probes)  # as daprd: no app token


async def test_a_probe_slower_than_the_timeout_is_a_failure() -> None:
    async with SubscriberApp() as app, app.channel() as channel:
        health = AppHealth(channel, AppHealthSettings(interval=0.05, timeout=0.5, threshold=1))
        app.respond("/healthz", 200)
        assert await health.probe_once() is AppStatus.HEALTHY
        app.respond("/healthz", Response(200, delay=1.5))
        assert await health.probe_once() is AppStatus.UNHEALTHY
        app.respond("/healthz", 200)
        assert await health.probe_once() is AppStatus.HEALTHY


async def test_an_app_that_is_gone_is_a_failure() -> None:
    async with SubscriberApp() as app, app.channel() as channel:
        health = AppHealth(channel, AppHealthSettings(interval=0.05, timeout=0.2, threshold=1))
        await app.stop()
        assert await health.probe_once() is AppStatus.UNHEALTHY


async def test_run_probes_every_interval() -> None:
    async with SubscriberApp() as app, app.channel() as channel:
        health = AppHealth(channel, AppHealthSettings(interval=0.1, timeout=0.5, threshold=1))
        task = asyncio.create_task(health.run())
        try:
            await asyncio.sleep(0.55)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert 3 <= len(app.received("/healthz")) <= 7  # every 0.1 s, not back to back
        assert health.status is AppStatus.HEALTHY
