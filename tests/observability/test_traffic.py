"""The dashboard's traffic window over a real HTTP server histogram: requests per second and p50/p99
per building block from the difference of two readings, the dashboard's own routes left out, the
quantiles interpolated within buckets, and the ring's length bounded."""

from __future__ import annotations

import pytest

from observability.metrics import Metrics
from observability.recent_errors import RecentErrors
from observability.traffic import TrafficWindow, block_of, quantile

STATE = "/v1.0/state/{storeName}/{key:anykey}"


def window(metrics: Metrics, **options: float) -> TrafficWindow:
    server = metrics.http_server
    return TrafficWindow(server.by_path, server.buckets, exclude={"/v1.0-alpha1/l8/dashboard"}, **options)


@pytest.mark.parametrize(
    ("template", "block"),
    [
        (STATE, "state"),
        ("/v1.0-alpha1/lock/{storeName}", "lock"),
        ("/{path:path}", "invoke"),
        ("/v1.0/invoke/{id}/method/{method:path}", "invoke"),
        ("/actuator/health/liveness", "actuator"),
        ("/v1.0/healthz", "healthz"),
        ("", "other"),
    ],
)
def test_a_template_belongs_to_its_building_block(template: str, block: str) -> None:
    assert block_of(template) == block


def test_rates_and_quantiles_come_from_the_histograms_difference() -> None:
    metrics = Metrics("app")
    traffic = window(metrics, interval=2.0)
    record = metrics.http_server.record
    record("GET", STATE, "/v1.0/state/s/k", 200, 0.0005)  # before the first reading: not counted
    traffic.sample()
    assert traffic.describe()["blocks"] == {}
    for _ in range(97):
        record("GET", STATE, "/v1.0/state/s/k", 200, 0.0015)  # in the (1, 2] ms bucket
    record("POST", STATE, "/v1.0/state/s", 500, 0.0015)
    for _ in range(2):
        record("GET", STATE, "/v1.0/state/s/k", 200, 0.045)  # in (40, 50]: the slowest 2%
    record("GET", "/v1.0-alpha1/l8/dashboard", "/v1.0-alpha1/l8/dashboard", 200, 0.001)
    traffic.sample()
    described = traffic.describe()
    assert described["intervalSeconds"] == 2.0 and len(described["times"]) == 1
    assert set(described["blocks"]) == {"state"}  # the dashboard's own polls are not charted
    state = described["blocks"]["state"]
    assert state["rps"] == [50.0]  # 100 requests in 2 s
    assert 1.0 < state["p50"][0] <= 2.0
    assert 40.0 < state["p99"][0] <= 50.0
    traffic.sample()  # a quiet interval
    state = traffic.describe()["blocks"]["state"]
    assert state["rps"] == [50.0, 0.0] and state["p50"][1] is None and state["p99"][1] is None


def test_a_block_first_seen_later_is_padded_and_the_ring_is_bounded() -> None:
    metrics = Metrics("app")
    traffic = window(metrics, points=3)
    traffic.sample()
    traffic.sample()
    metrics.http_server.record("POST", "/v1.0/publish/{pubsubname}/{topic:anykey}", "/x", 204, 0.002)
    traffic.sample()
    publish = traffic.describe()["blocks"]["publish"]
    assert publish["rps"][0] == 0.0 and publish["rps"][1] > 0 and len(publish["rps"]) == 2
    for _ in range(5):
        traffic.sample()
    described = traffic.describe()
    assert len(described["times"]) == 3 and len(described["blocks"]["publish"]["rps"]) == 3


def test_quantile_interpolates_within_a_bucket() -> None:
    bounds = (1.0, 2.0, 4.0)
    assert quantile(0.5, bounds, [0, 10, 10, 10]) == 1.5
    assert quantile(0.5, bounds, [0, 0, 0, 0]) is None
    assert quantile(0.99, bounds, [0, 0, 0, 10]) == 4.0  # in +Inf: the last finite bound


def test_recent_errors_keep_the_newest() -> None:
    errors = RecentErrors(kept=2, clock=lambda: 1.0)
    for code in ("A", "B", "C"):
        errors.record(400, code, "m" * 1000, "GET", "/r")
    described = errors.describe()
    assert [e["code"] for e in described] == ["C", "B"]
    assert len(described[0]["message"]) == 500
