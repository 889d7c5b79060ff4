"""An app written with the Dapr Python SDK's gRPC extension (``dapr.ext.grpc.App``), unmodified,
behind a real ``l8 run --app-protocol grpc``: l8 calls its ``AppCallback`` service for the
subscriptions (``ListTopicSubscriptions``) and their events (``OnTopicEvent``, RETRY retried,
DROP to the dead-letter topic), invocations over HTTP and over gRPC (``OnInvoke``), input binding
events (``ListInputBindings``, ``OnBindingEvent``, from a cron binding) and the health probe
(``AppCallbackHealthCheck``) and a scheduled job (``OnJobEventAlpha1``), each with the app token. The app runs in this process on its own
gRPC server thread, as ``App.run`` starts it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import orjson
import pytest
import yaml
from dapr.clients import DaprClient
from dapr.clients.grpc._response import TopicEventResponse
from dapr.ext.grpc import (
    App,
    BindingRequest,
    InvokeMethodRequest,
    InvokeMethodResponse,
    JobEvent,
    SubscriptionMessage,
)

from tests.e2e.process import L8Launcher, L8Process, write_component
from tests.servers import LOOPBACK, free_port

pytestmark = pytest.mark.e2e

TOKEN = "app-t0ken-18"


class GrpcApp:
    """The SDK's App with a handler per kind of callback, recording what each receives."""

    def __init__(self) -> None:
        self.events: dict[str, list[SubscriptionMessage]] = {
            "orders": [],
            "flaky": [],
            "refused": [],
            "refused-dead": [],
        }
        self.tokens: list[str | None] = []
        self.ticks: list[BindingRequest] = []
        self.jobs: list[JobEvent] = []
        self.health_checks = 0
        self.healthy = True
        app = App()
        self.app = app

        def record(
            topic: str, answer: Callable[[int], str]
        ) -> Callable[[SubscriptionMessage], TopicEventResponse]:
            def handler(event: SubscriptionMessage) -> TopicEventResponse:
                self.events[topic].append(event)
                return TopicEventResponse(answer(len(self.events[topic])))

            handler.__name__ = topic.replace("-", "_")
            return handler

        app.subscribe(pubsub_name="pubsub", topic="orders", metadata={"rawPayload": "false"})(
            record("orders", lambda _: "success")
        )
        # RETRY twice, then SUCCESS: the resiliency policy retries in the sidecar.
        app.subscribe(pubsub_name="pubsub", topic="flaky")(
            record("flaky", lambda count: "retry" if count <= 2 else "success")
        )
        app.subscribe(pubsub_name="pubsub", topic="refused", dead_letter_topic="refused-dead")(
            record("refused", lambda _: "drop")
        )
        app.subscribe(pubsub_name="pubsub", topic="refused-dead")(record("refused-dead", lambda _: "success"))

        @app.method("echo")
        def echo(request: InvokeMethodRequest) -> InvokeMethodResponse:
            # The SDK gives each metadata entry as a list of its values.
            metadata = {name: values[0] for name, values in request.metadata.items()}
            self.tokens.append(metadata.get("dapr-api-token"))
            answer = {
                "text": request.text(),
                "contentType": request.content_type,
                "caller": metadata.get("dapr-caller-app-id"),
            }
            return InvokeMethodResponse(orjson.dumps(answer), "application/json")

        @app.method("fail")
        def fail(request: InvokeMethodRequest) -> str:
            raise RuntimeError("the app failed")

        @app.binding("tick")
        def tick(request: BindingRequest) -> None:
            self.ticks.append(request)

        @app.job_event("nightly")
        def nightly(event: JobEvent) -> None:
            self.jobs.append(event)

        def health() -> None:
            self.health_checks += 1
            if not self.healthy:
                raise RuntimeError("not healthy")

        app.register_health_check(health)
        self.port = free_port()
        self.thread = threading.Thread(target=app.run, args=(self.port, LOOPBACK), daemon=True)

    def start(self) -> None:
        self.thread.start()
        with grpc.insecure_channel(f"{LOOPBACK}:{self.port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=10)

    def stop(self) -> None:
        self.app.stop()
        self.thread.join(10)

    def wait(self, found: Callable[[], int], count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while found() < count:
            assert time.monotonic() < deadline, f"{found()} of {count}"
            time.sleep(0.02)


@pytest.fixture(scope="module")
def grpc_app() -> Iterator[GrpcApp]:
    app = GrpcApp()
    app.start()
    yield app
    app.stop()


def _resources(folder: Path) -> Path:
    write_component(folder, "pubsub", "pubsub.in-memory")
    write_component(folder, "tick", "bindings.cron", {"schedule": "@every 1s"})
    write_component(folder, "ignored", "bindings.cron", {"schedule": "@every 1s"})  # not the app's
    retries = {"quick": {"policy": "constant", "duration": "50ms", "maxRetries": 5}}
    document = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Resiliency",
        "metadata": {"name": "delivery"},
        "spec": {
            "policies": {"retries": retries},
            "targets": {"components": {"pubsub": {"inbound": {"retry": "quick"}}}},
        },
    }
    (folder / "resiliency.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory, grpc_app: GrpcApp) -> Iterator[L8Process]:
    workdir = tmp_path_factory.mktemp("l8-grpc-app")
    launcher = L8Launcher(workdir)
    try:
        process = launcher(
            app_id="grpc-callback",
            resources=[_resources(workdir / "resources")],
            args=[
                "--app-port",
                str(grpc_app.port),
                "--app-protocol",
                "grpc",
                "--enable-app-health-check",
                "--app-health-probe-interval",
                "1",
            ],
            env={"APP_API_TOKEN": TOKEN},
        )
        _wait_subscribed(process, {"orders", "flaky", "refused", "refused-dead"})
        yield process
    finally:
        launcher.close()


def _wait_subscribed(process: L8Process, topics: set[str], timeout: float = 15.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = httpx.get(f"{process.url}/v1.0/metadata").json().get("subscriptions", [])
        if {s["topic"] for s in found} >= topics:
            return list(found)
        assert time.monotonic() < deadline, f"subscriptions not loaded: {found}"
        time.sleep(0.05)


def test_the_apps_subscriptions_are_read_over_grpc(sidecar: L8Process) -> None:
    found = {s["topic"]: s for s in _wait_subscribed(sidecar, {"orders"})}
    assert found["orders"]["type"] == "PROGRAMMATIC"
    assert found["orders"]["metadata"] == {"rawPayload": "false"}
    assert found["refused"]["deadLetterTopic"] == "refused-dead"
    metadata = httpx.get(f"{sidecar.url}/v1.0/metadata").json()
    assert metadata["appConnectionProperties"]["protocol"] == "grpc"


def test_published_events_reach_the_handler_with_the_cloudevent(
    sidecar: L8Process, grpc_app: GrpcApp
) -> None:
    seen = len(grpc_app.events["orders"])
    answer = httpx.post(f"{sidecar.url}/v1.0/publish/pubsub/orders", json={"orderId": 7})
    assert answer.status_code == 204, answer.text
    grpc_app.wait(lambda: len(grpc_app.events["orders"]), seen + 1)
    event = grpc_app.events["orders"][seen]
    assert event.data() == {"orderId": 7}
    assert event.raw_data() == b'{"orderId":7}'
    assert event.type() == "com.dapr.event.sent"
    assert event.source() == "grpc-callback"
    assert (event.topic(), event.pubsub_name()) == ("orders", "pubsub")
    assert event.data_content_type() == "application/json"
    assert event.spec_version() == "1.0"
    assert event.id()
    assert event.extensions()["traceparent"].startswith("00-")
    assert event.metadata()["dapr-api-token"] == TOKEN
    assert event.metadata()["pubsubname"] == "pubsub"

    text = httpx.post(
        f"{sidecar.url}/v1.0/publish/pubsub/orders", content=b"hello", headers={"content-type": "text/plain"}
    )
    assert text.status_code == 204
    grpc_app.wait(lambda: len(grpc_app.events["orders"]), seen + 2)
    assert grpc_app.events["orders"][seen + 1].data() == "hello"


def test_retry_is_retried_and_drop_goes_to_the_dead_letter_topic(
    sidecar: L8Process, grpc_app: GrpcApp
) -> None:
    assert httpx.post(f"{sidecar.url}/v1.0/publish/pubsub/flaky", json={"n": 1}).status_code == 204
    grpc_app.wait(lambda: len(grpc_app.events["flaky"]), 3)
    assert len({event.id() for event in grpc_app.events["flaky"]}) == 1  # one event, three times
    time.sleep(0.5)
    assert len(grpc_app.events["flaky"]) == 3  # acknowledged after the SUCCESS

    assert httpx.post(f"{sidecar.url}/v1.0/publish/pubsub/refused", json={"n": 2}).status_code == 204
    grpc_app.wait(lambda: len(grpc_app.events["refused-dead"]), 1)
    assert len(grpc_app.events["refused"]) == 1  # a DROP is not retried
    assert grpc_app.events["refused-dead"][0].id() == grpc_app.events["refused"][0].id()


def test_invocation_over_http_reaches_on_invoke(sidecar: L8Process, grpc_app: GrpcApp) -> None:
    answer = httpx.put(
        f"{sidecar.url}/v1.0/invoke/grpc-callback/method/echo?a=1&b=2",
        content=b"ping",
        headers={"content-type": "text/plain"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    # The SDK hands its handlers neither the verb nor the query (tests/routers/test_app_callback.py
    # shows they are sent); the caller id is a metadata entry.
    assert answer.json() == {"text": "ping", "contentType": "text/plain", "caller": "grpc-callback"}
    assert grpc_app.tokens[-1] == TOKEN


def test_an_app_error_is_daprs_http_status_of_its_grpc_code(sidecar: L8Process) -> None:
    failed = httpx.post(f"{sidecar.url}/v1.0/invoke/grpc-callback/method/fail", content=b"x")
    assert failed.status_code == 500  # UNKNOWN
    assert failed.json()["code"] == grpc.StatusCode.UNKNOWN.value[0]
    assert "the app failed" in failed.json()["message"]

    missing = httpx.post(f"{sidecar.url}/v1.0/invoke/grpc-callback/method/nothing", content=b"x")
    assert missing.status_code == 501  # UNIMPLEMENTED
    assert missing.json()["code"] == grpc.StatusCode.UNIMPLEMENTED.value[0]


@pytest.mark.filterwarnings("ignore:invoke_method with protocol gRPC is deprecated:DeprecationWarning")
def test_invocation_over_grpc_reaches_on_invoke(sidecar: L8Process, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DAPR_HTTP_ENDPOINT", "DAPR_GRPC_ENDPOINT", "DAPR_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAPR_RUNTIME_HOST", LOOPBACK)
    monkeypatch.setenv("DAPR_HTTP_PORT", str(sidecar.port))
    monkeypatch.setenv("DAPR_GRPC_PORT", str(sidecar.grpc_port))
    monkeypatch.setenv("DAPR_HEALTH_TIMEOUT", "5")
    monkeypatch.setenv("DAPR_API_METHOD_INVOCATION_PROTOCOL", "grpc")
    with DaprClient() as client:
        answer = client.invoke_method(
            "grpc-callback", "echo", data=b'{"n": 1}', content_type="application/json", http_verb="POST"
        )
    assert answer.content_type == "application/json"
    assert orjson.loads(answer.data)["text"] == '{"n": 1}'
    assert orjson.loads(answer.data)["contentType"] == "application/json"


def test_input_binding_events_reach_the_apps_binding_only(sidecar: L8Process, grpc_app: GrpcApp) -> None:
    grpc_app.wait(lambda: len(grpc_app.ticks), 2)
    tick = grpc_app.ticks[-1]
    assert tick.binding_metadata["timeZone"] == "Local"
    assert tick.metadata["dapr-api-token"] == [TOKEN]
    assert "input binding read" in sidecar.stderr and "binding=tick" in sidecar.stderr
    assert "binding=ignored" not in sidecar.stderr.split("input binding read", 1)[1].split("\n", 1)[0]


def test_a_scheduled_job_reaches_the_apps_job_handler(sidecar: L8Process, grpc_app: GrpcApp) -> None:
    answer = httpx.post(
        f"{sidecar.url}/v1.0-alpha1/jobs/nightly", json={"dueTime": "0s", "data": {"batch": 3}}
    )
    assert answer.status_code == 204, answer.text
    grpc_app.wait(lambda: len(grpc_app.jobs), 1)
    (job,) = grpc_app.jobs
    assert job.name == "nightly"
    assert orjson.loads(job.data) == {"batch": 3}


def test_the_health_probe_is_the_apps_health_check(sidecar: L8Process, grpc_app: GrpcApp) -> None:
    grpc_app.wait(lambda: grpc_app.health_checks, 2)
    grpc_app.healthy = False
    try:
        deadline = time.monotonic() + 10
        while True:
            answer = httpx.post(f"{sidecar.url}/v1.0/invoke/grpc-callback/method/echo", content=b"x")
            if answer.status_code == 500 and "not in a healthy state" in answer.text:
                break
            assert time.monotonic() < deadline, f"the app never became unhealthy: {answer.text}"
            time.sleep(0.2)
    finally:
        grpc_app.healthy = True
    deadline = time.monotonic() + 10
    while httpx.post(f"{sidecar.url}/v1.0/invoke/grpc-callback/method/echo", content=b"x").status_code != 200:
        assert time.monotonic() < deadline, "the app never became healthy again"
        time.sleep(0.2)
