"""Prometheus metrics through real ``l8 run`` processes: the text on ``--metrics-port`` parsed by
prometheus_client's parser after real state calls (Redis), publishes and deliveries (the
Kafka-protocol broker) and invocations; counts go up by what was done, keys and invoked paths never
become labels, ``pathMatching`` bounds the path label, ``--enable-metrics=false`` opens no port and
a port in use fails start-up with one line."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.process import L8Launcher, L8Process, run_l8, write_component
from tests.e2e.test_configuration_updates import recording_app
from tests.servers import LOOPBACK, free_port
from tests.subscriber_app import SubscriberApp

pytestmark = pytest.mark.e2e

Samples = list[tuple[str, dict[str, str], float]]
STATE_KEY = "/v1.0/state/{storeName}/{key:anykey}"


def scrape(port: int) -> Samples:
    answer = httpx.get(f"http://{LOOPBACK}:{port}/metrics", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    ]


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(
        v for n, found, v in samples if n == name and all(found.get(k) == x for k, x in labels.items())
    )


def label_values(samples: Samples, label: str) -> set[str]:
    return {found[label] for _, found, _ in samples if label in found}


def sidecar(l8: L8Launcher, metrics_port: int, **options: object) -> L8Process:
    args = [*options.pop("args", []), "--metrics-port", str(metrics_port)]  # type: ignore[misc]
    return l8(args=args, **options)


async def test_counts_follow_real_state_publish_and_invoke_calls(
    l8: L8Launcher, tmp_path: Path, redis_server: object, kafka_server: object
) -> None:
    folder = tmp_path / "resources"
    write_component(folder, "statestore", "state.redis", {"redisHost": redis_server.address})  # type: ignore[attr-defined]
    write_component(folder, "pubsub", "pubsub.kafka", {"brokers": kafka_server.address})  # type: ignore[attr-defined]
    topic = f"metrics-{uuid.uuid4().hex[:10]}"
    app_id = f"metrics-{uuid.uuid4().hex[:8]}"
    port = free_port()
    async with SubscriberApp(
        subscriptions=[{"pubsubname": "pubsub", "topic": topic, "route": "/orders"}]
    ) as app:
        process = await asyncio.to_thread(
            sidecar, l8, port, app_id=app_id, resources=[folder], args=["--app-port", str(app.port)]
        )
        async with httpx.AsyncClient(base_url=process.url, timeout=10) as client:
            await _subscribed(client, topic)
            before = scrape(port)
            assert total(before, "dapr_runtime_component_loaded_total", app_id=app_id) == 2

            keys = [f"secret-key-{n}" for n in range(5)]
            saved = await client.post("/v1.0/state/statestore", json=[{"key": k, "value": 1} for k in keys])
            assert saved.status_code == 204
            for key in keys:
                assert (await client.get(f"/v1.0/state/statestore/{key}")).status_code == 200
            for n in range(3):
                assert (await client.post(f"/v1.0/publish/pubsub/{topic}", json={"n": n})).status_code == 204
            await app.wait_for(3, path="/orders", timeout=20)
            for n in range(2):
                await client.post(f"/v1.0/invoke/{app_id}/method/customers/{n}", content=b"x")
            await asyncio.sleep(0.3)  # the last delivery's outcome is recorded once the app answered
            after = scrape(port)

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    get = {"app_id": app_id, "method": "GET", "path": STATE_KEY, "status": "200"}
    assert grew("dapr_http_server_request_count_total", **get) == 5
    assert grew("dapr_http_server_response_count_total", **get) == 5
    assert grew("dapr_http_server_latency_count", **get) == 5
    assert grew("dapr_http_server_request_count_total", method="POST", path="/v1.0/state/{storeName}") == 1
    egress = {"component": "pubsub", "topic": topic, "success": "true"}
    assert grew("dapr_component_pubsub_egress_count_total", **egress) == 3
    assert grew("dapr_component_pubsub_egress_latencies_count", **egress) == 3
    ingress = {"component": "pubsub", "topic": topic, "process_status": "success", "status": "success"}
    assert grew("dapr_component_pubsub_ingress_count_total", **ingress) == 3
    assert grew("dapr_component_pubsub_ingress_latencies_count", **ingress) == 3
    # Two invocations reached the app, and three deliveries went through the app channel.
    assert grew("dapr_http_client_completed_count_total", app_id=app_id) >= 5
    assert grew("dapr_http_client_roundtrip_latency_count", app_id=app_id) >= 5
    # Keys and invoked methods are never label values.
    paths = label_values(after, "path")
    assert not [p for p in paths if "secret-key" in p or "customers" in p], paths
    buckets = {found["le"] for n, found, _ in after if n == "dapr_http_server_latency_bucket"}
    assert {"1.0", "5.0", "100000.0", "+Inf"} <= buckets  # Dapr's buckets, in milliseconds


async def _subscribed(client: httpx.AsyncClient, topic: str) -> None:
    for _ in range(300):
        found = (await client.get("/v1.0/metadata")).json().get("subscriptions", [])
        if topic in {s["topic"] for s in found}:
            await asyncio.sleep(0.5)  # Kafka: partitions assigned after the subscribe call
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not subscribed to {topic}")


def _configuration(tmp_path: Path, metric: Mapping[str, object]) -> Path:
    path = tmp_path / "config.yaml"
    document = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Configuration",
        "metadata": {"name": "metrics"},
        "spec": {"metric": dict(metric)},
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_path_matching_bounds_the_path_label(l8: L8Launcher, tmp_path: Path) -> None:
    config = _configuration(
        tmp_path,
        {
            "http": {"increasedCardinality": False, "pathMatching": ["/v1.0/state/statestore/{key}"]},
            "latencyDistributionBuckets": [5, 50, 500],
        },
    )
    port = free_port()
    process = sidecar(l8, port, args=["--config", str(config)])
    with httpx.Client(base_url=process.url, timeout=10) as client:
        for n in range(20):
            client.get(f"/v1.0/state/statestore/key-{n}")
        client.post("/v1.0/state/statestore", json=[{"key": "a", "value": 1}])
    samples = scrape(port)
    count = "dapr_http_server_request_count_total"
    assert total(samples, count, method="GET", path="/v1.0/state/statestore/{key}") == 20
    # Unmatched, low cardinality: Dapr's catch-all "".
    assert total(samples, count, method="POST", path="") == 1
    assert label_values([s for s in samples if s[0] == count], "path") == {"/v1.0/state/statestore/{key}", ""}
    buckets = {found["le"] for n, found, _ in samples if n == "dapr_http_server_latency_bucket"}
    assert buckets == {"5.0", "50.0", "500.0", "+Inf"}


def test_enable_metrics_false_opens_no_port(l8: L8Launcher) -> None:
    port = free_port()
    process = sidecar(l8, port, args=["--enable-metrics=false"])
    assert httpx.get(f"{process.url}/v1.0/healthz").status_code == 204
    with socket.socket() as probe:
        assert probe.connect_ex((LOOPBACK, port)) != 0


def test_metrics_disabled_by_the_configuration(l8: L8Launcher, tmp_path: Path) -> None:
    port = free_port()
    process = sidecar(l8, port, args=["--config", str(_configuration(tmp_path, {"enabled": False}))])
    assert httpx.get(f"{process.url}/v1.0/healthz").status_code == 204
    with socket.socket() as probe:
        assert probe.connect_ex((LOOPBACK, port)) != 0


def test_a_metrics_port_in_use_fails_start_up_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_l8(
            "run", "--port", str(free_port()), "--metrics-port", str(port), "--data-dir", str(tmp_path / "d")
        )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.startswith("l8:")]
    assert lines == [
        f"l8: metrics_port (--metrics-port): cannot listen on 0.0.0.0:{port}: Address already in use"
    ]


def test_l8_counters_for_rate_limits_and_sequencer_blocks(l8: L8Launcher, tmp_path: Path) -> None:
    settings = tmp_path / "l8.yaml"
    settings.write_text(
        "rate_limits:\n  rules:\n"
        "    - {name: few-writes, resource: /v1.0/state/*, methods: [POST], threshold: 3, interval: 60s}\n",
        encoding="utf-8",
    )
    port = free_port()
    process = sidecar(l8, port, args=["--config", str(settings)])
    with httpx.Client(base_url=process.url, timeout=10) as client:
        statuses = [
            client.post("/v1.0/state/statestore", json=[{"key": "a", "value": n}]).status_code
            for n in range(5)
        ]
        for _ in range(3):
            answer = client.post(
                "/v1.0-alpha1/sequencer/sequencer", json={"key": "ids", "options": {"increment": "WEAK"}}
            )
            assert answer.status_code == 200, answer.text
    assert statuses == [204, 204, 204, 429, 429]
    samples = scrape(port)
    rule = {"rule": "few-writes"}
    assert total(samples, "l8_ratelimit_requests_total", outcome="allowed", **rule) == 3
    assert total(samples, "l8_ratelimit_requests_total", outcome="refused", **rule) == 2
    assert total(samples, "dapr_http_server_request_count_total", method="POST", status="429") == 2
    assert total(samples, "l8_sequencer_blocks_total", component="sequencer") >= 1


async def test_configuration_deliveries_are_counted(l8: L8Launcher) -> None:
    port = free_port()
    async with recording_app() as (app_port, updates):
        process = await asyncio.to_thread(sidecar, l8, port, args=["--app-port", str(app_port)])
        async with httpx.AsyncClient(base_url=process.url, timeout=10) as client:
            answer = await client.get("/v1.0/configuration/configstore/subscribe", params={"key": "limit"})
            assert answer.status_code == 200, answer.text
            for value in ("1", "2"):
                body = {"items": [{"key": "limit", "content": value}]}
                assert (
                    await client.post("/v1.0-alpha1/configuration/configstore", json=body)
                ).status_code == 204
            for _ in range(100):
                if len(updates) >= 2:
                    break
                await asyncio.sleep(0.05)
    assert len(updates) == 2
    samples = scrape(port)
    assert total(samples, "l8_configuration_deliveries_total", component="configstore", success="true") == 2
    assert total(samples, "dapr_http_client_completed_count_total", method="POST", status="200") >= 2
