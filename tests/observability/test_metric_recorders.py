"""The recorders, the Configuration's ``spec.metric``, path matching, the exposition with Dapr's
names, and the metrics server on a real socket."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mesh.resiliency import CircuitOpenError, Resiliency, RetriableFailure
from observability.metrics import Metrics, MetricSpec, MetricSpecError, MetricsServer, parse_metric_spec
from observability.metrics.exposition import render
from observability.metrics.paths import PathMatcher

STATE = "/v1.0/state/{storeName}/{key:anykey}"


def samples(metrics: Metrics) -> list[tuple[str, dict[str, str], float]]:
    text = render(metrics.registry).decode()
    return [
        (s.name, dict(s.labels), s.value) for f in text_string_to_metric_families(text) for s in f.samples
    ]


def value(metrics: Metrics, metric: str, **labels: str) -> float:
    return sum(
        v
        for n, found, v in samples(metrics)
        if n == metric and all(found.get(k) == x for k, x in labels.items())
    )


def test_server_requests_are_labelled_by_template_never_by_key() -> None:
    metrics = Metrics("orders")
    for n in range(3):
        metrics.http_server.record("GET", STATE, f"/v1.0/state/s/key-{n}", 200, 0.002)
    metrics.http_server.record("GET", STATE, "/v1.0/state/s/gone", 204, 0.001)
    labels = {"app_id": "orders", "method": "GET", "path": STATE}
    assert value(metrics, "dapr_http_server_request_count_total", status="200", **labels) == 3
    assert value(metrics, "dapr_http_server_response_count_total", status="204", **labels) == 1
    assert value(metrics, "dapr_http_server_latency_count", status="200", **labels) == 3
    assert value(metrics, "dapr_http_server_latency_sum", status="200", **labels) == pytest.approx(6.0)
    assert value(metrics, "dapr_http_server_latency_bucket", status="200", le="2.0", **labels) == 3
    assert value(metrics, "dapr_http_server_latency_bucket", status="200", le="1.0", **labels) == 0


def test_low_cardinality_drops_the_path_and_exclude_verbs_the_method() -> None:
    metrics = Metrics("a", MetricSpec(increased_cardinality=False, exclude_verbs=True))
    metrics.http_server.record("GET", STATE, "/v1.0/state/s/k", 200, 0.001)
    metrics.http_server.record("POST", "/v1.0/state/{storeName}", "/v1.0/state/s", 204, 0.001)
    assert value(metrics, "dapr_http_server_request_count_total", method="", path="") == 2


def test_path_matching_labels_with_the_pattern() -> None:
    spec = MetricSpec(path_matching=("/v1.0/invoke/{app}/method/orders/{id}",))
    metrics = Metrics("a", spec)
    for n in range(4):
        path = f"/v1.0/invoke/shop/method/orders/{n}"
        metrics.http_server.record("POST", "/v1.0/invoke/{id}/method/{method:path}", path, 200, 0.001)
        metrics.http_client.record("POST", f"/orders/{n}", 200, 0.001)
    metrics.http_server.record("GET", "/v1.0/metadata", "/v1.0/metadata", 200, 0.001)
    count = "dapr_http_server_request_count_total"
    assert value(metrics, count, path="/v1.0/invoke/{app}/method/orders/{id}") == 4
    assert value(metrics, count, path="/v1.0/metadata") == 1  # unmatched, increasedCardinality: the template
    # A client path no pattern matches is never a label.
    assert value(metrics, "dapr_http_client_completed_count_total", path="", status="200") == 4


def test_path_matcher_follows_servemux_patterns() -> None:
    matcher = PathMatcher(["/orders/{id}", "/orders/special", "/files/", "/docs/{rest...}", "/exact/{$}"])
    assert matcher.label("/orders/7") == "/orders/{id}"
    assert matcher.label("/orders/special") == "/orders/special"  # the most specific pattern wins
    assert matcher.label("/orders/7/items") is None
    assert matcher.label("/files/a/b") == "/files/"
    assert matcher.label("/docs/a/b/c") == "/docs/{rest...}"
    assert matcher.label("/exact/") == "/exact/{$}"
    assert matcher.label("/exact/more") is None
    assert not PathMatcher([])


def test_dapr_counts_keep_their_names_and_have_no_created_samples() -> None:
    metrics = Metrics("a")
    metrics.component_loaded()
    metrics.track(
        "l8_ratelimit_requests", "Rules.", ("rule", "outcome"), lambda: [(("per-ip", "refused"), 1)]
    )
    text = render(metrics.registry).decode()
    assert "# TYPE dapr_runtime_component_loaded counter" in text
    assert 'dapr_runtime_component_loaded{app_id="a",namespace=""} 1.0' in text
    assert 'l8_ratelimit_requests_total{app_id="a",outcome="refused",rule="per-ip"} 1.0' in text
    assert "_created" not in text
    assert "dapr_runtime_component_loaded_total" not in text


def test_pubsub_and_l8_counters() -> None:
    metrics = Metrics("a")
    metrics.pubsub.published("kafka", "orders", True, 0.004)
    metrics.pubsub.published("kafka", "orders", False, 0.004)
    metrics.pubsub.delivered("kafka", "orders", "retry", "", 0.01)
    metrics.resiliency_loaded("retries")
    policy = metrics.resiliency_policy("retries", "outbound", "app_b")
    policy.applied("retry")
    policy.activated("retry")
    policy.activated("circuitbreaker", "open")
    blocks = {"ids": 3}
    metrics.track(
        "l8_sequencer_blocks", "Blocks.", ("component",), lambda: [((k,), v) for k, v in blocks.items()]
    )
    assert value(metrics, "dapr_component_pubsub_egress_count_total", success="true", topic="orders") == 1
    assert value(metrics, "dapr_component_pubsub_egress_count_total", success="false") == 1
    assert (
        value(metrics, "dapr_component_pubsub_ingress_count_total", process_status="retry", status="retry")
        == 1
    )
    assert value(metrics, "dapr_resiliency_loaded_total", name="retries") == 1
    assert (
        value(
            metrics, "dapr_resiliency_count_total", policy="retry", target="app_b", flow_direction="outbound"
        )
        == 1
    )
    assert value(metrics, "dapr_resiliency_activations_total", policy="retry", target="app_b") == 1
    assert value(metrics, "dapr_resiliency_activations_total", policy="circuitbreaker", status="open") == 1
    assert value(metrics, "l8_sequencer_blocks_total", app_id="a", component="ids") == 3
    blocks["ids"] = 5  # read at each scrape
    assert value(metrics, "l8_sequencer_blocks_total", component="ids") == 5


def test_metric_spec_from_a_configuration() -> None:
    assert parse_metric_spec({}) == MetricSpec()
    spec = parse_metric_spec(
        {
            "metrics": {
                "enabled": "false",
                "latencyDistributionBuckets": [10, 25, 40],
                "http": {
                    "increasedCardinality": False,
                    "pathMatching": ["/orders/{id}"],
                    "excludeVerbs": True,
                },
            }
        }
    )
    assert spec == MetricSpec(False, False, ("/orders/{id}",), True, (10.0, 25.0, 40.0))


@pytest.mark.parametrize(
    ("metric", "field"),
    [
        ({"enabled": "maybe"}, "spec.metric.enabled"),
        ({"http": {"increasedCardinality": "x"}}, "spec.metric.http.increasedCardinality"),
        ({"http": {"pathMatching": "orders"}}, "spec.metric.http.pathMatching"),
        ({"http": {"pathMatching": ["orders"]}}, "spec.metric.http.pathMatching"),
        ({"latencyDistributionBuckets": [5, 1]}, "spec.metric.latencyDistributionBuckets"),
        ({"latencyDistributionBuckets": [0, 1]}, "spec.metric.latencyDistributionBuckets"),
        ({"http": []}, "spec.metric.http"),
    ],
)
def test_a_bad_metric_field_is_named(metric: dict[str, object], field: str) -> None:
    with pytest.raises(MetricSpecError, match=f"^{field}: "):
        parse_metric_spec({"metric": metric})


async def test_the_server_answers_metrics_and_refuses_other_paths() -> None:
    metrics = Metrics("a")
    metrics.component_loaded()
    server = MetricsServer(metrics.registry, "127.0.0.1", 0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            answer = await client.get("/metrics")
            assert answer.status_code == 200
            assert "dapr_runtime_component_loaded" in answer.text
            assert (await client.get("/other")).status_code == 404
            assert (await client.post("/metrics")).status_code == 405
        # A connection that never sends its head does not hold the server up.
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{server.port}/metrics")).status_code == 200
        writer.close()
        taken = MetricsServer(metrics.registry, "127.0.0.1", server.port)
        with pytest.raises(OSError):
            await taken.start()
    finally:
        await server.aclose()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", server.port)) != 0


async def test_a_policy_records_dapr_resiliency_metrics() -> None:
    metrics = Metrics("a")
    resiliency = Resiliency.from_resources(
        [
            (
                "Resiliency",
                {
                    "apiVersion": "dapr.io/v1alpha1",
                    "kind": "Resiliency",
                    "metadata": {"name": "calls"},
                    "spec": {
                        "policies": {
                            "retries": {"twice": {"policy": "constant", "duration": "1ms", "maxRetries": 2}},
                            "timeouts": {"short": "50ms"},
                            "circuitBreakers": {"cb": {"trip": "consecutiveFailures > 1", "timeout": "30s"}},
                        },
                        "targets": {
                            "apps": {"b": {"retry": "twice", "timeout": "short", "circuitBreaker": "cb"}}
                        },
                    },
                },
                "resiliency.yaml",
            )
        ],
        "a",
    )
    resiliency.metrics = metrics
    policy = resiliency.app("b")
    failures = 0

    async def flaky() -> str:
        nonlocal failures
        failures += 1
        if failures == 1:
            raise RetriableFailure("503", 503)
        await asyncio.sleep(1)  # the policy's 50ms timeout fires
        return "late"

    # 503, then a timeout (the breaker opens), then the open breaker refuses the third attempt.
    with pytest.raises(CircuitOpenError):
        await policy.run(flaky)
    labels = {"name": "calls", "flow_direction": "outbound", "target": "app_b"}
    assert value(metrics, "dapr_resiliency_count_total", policy="retry", **labels) == 1
    assert value(metrics, "dapr_resiliency_count_total", policy="timeout", **labels) == 1
    assert value(metrics, "dapr_resiliency_activations_total", policy="retry", **labels) == 2
    assert value(metrics, "dapr_resiliency_activations_total", policy="timeout", **labels) == 1
    assert (
        value(metrics, "dapr_resiliency_activations_total", policy="circuitbreaker", status="open", **labels)
        == 1
    )
