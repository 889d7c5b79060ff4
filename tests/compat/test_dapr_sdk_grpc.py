"""The Dapr Python SDK (PyPI ``dapr``), unmodified, against a real ``l8 run`` over gRPC: what
``DaprClient`` does only over gRPC (state with ETags, bulk, transactions and query, publish,
bindings, secrets, configuration get and subscribe, locks, invocation with
``DAPR_API_METHOD_INVOCATION_PROTOCOL=grpc``, metadata, shutdown), and its errors as the SDK's
``DaprGrpcError`` with daprd's status codes and ``ErrorInfo`` reasons.

The SDK finds the sidecar as an app would: ``DAPR_HTTP_PORT`` for its readiness probe,
``DAPR_GRPC_PORT`` for the channel. The app l8 calls (``--app-port``) is a FastAPI app made a
subscriber by ``dapr.ext.fastapi.DaprApp``, running in this process on a thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import orjson
import pytest
import uvicorn
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError
from dapr.clients.grpc._request import TransactionalStateOperation, TransactionOperationType
from dapr.clients.grpc._response import UnlockResponseStatus
from dapr.clients.grpc._state import Concurrency, StateItem, StateOptions
from dapr.ext.fastapi import DaprApp
from fastapi import Body, FastAPI, Request
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.e2e.process import L8Launcher, L8Process, write_component
from tests.servers import LOOPBACK, free_port

pytestmark = pytest.mark.e2e

SECRET = "gRPC-s3cr3t-71c"


class App:
    """The app behind the sidecar: records the events DaprApp hands it and echoes invocations."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        app = FastAPI()
        dapr_app = DaprApp(app)

        @dapr_app.subscribe(pubsub="pubsub", topic="orders")
        def orders(event: dict[str, Any] = Body()) -> dict[str, str]:
            self.events.append(event)
            return {"status": "SUCCESS"}

        @app.api_route("/echo/{tail:path}", methods=["GET", "POST", "PUT", "DELETE"])
        async def echo(request: Request, tail: str) -> dict[str, Any]:
            body = await request.body()
            return {
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "body": body.decode(),
                "contentType": request.headers.get("content-type"),
                "caller": request.headers.get("dapr-caller-app-id"),
            }

        @app.post("/teapot")
        async def teapot() -> Any:
            from fastapi.responses import PlainTextResponse

            return PlainTextResponse("not here", status_code=404)

        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host=LOOPBACK, port=self.port, log_level="warning", lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the app did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def wait_for_events(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            assert time.monotonic() < deadline, f"{len(self.events)} of {count} events"
            time.sleep(0.02)
        return self.events


def _resources(folder: Path, tmp: Path) -> Path:
    (tmp / "secrets.json").write_bytes(orjson.dumps({"api-key": SECRET, "db": {"user": "u"}}))
    write_component(folder, "statestore", "state.sqlite", {"connectionString": str(tmp / "state.db")})
    write_component(folder, "pubsub", "pubsub.in-memory")
    write_component(folder, "lockstore", "lock.in-memory")
    write_component(folder, "configstore", "configuration.in-memory")
    write_component(folder, "vault", "secretstores.local.file", {"secretsFile": str(tmp / "secrets.json")})
    write_component(folder, "files", "bindings.localstorage", {"rootPath": str(tmp / "files")})
    return folder


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    started = App()
    started.start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory, app: App) -> Iterator[L8Process]:
    workdir = tmp_path_factory.mktemp("l8-grpc-sdk")
    launcher = L8Launcher(workdir)
    try:
        yield launcher(
            app_id="grpc-app",
            resources=[_resources(workdir / "resources", workdir)],
            args=["--app-port", str(app.port)],
        )
    finally:
        launcher.close()


@pytest.fixture
def client(sidecar: L8Process, monkeypatch: pytest.MonkeyPatch) -> Iterator[DaprClient]:
    """The SDK's client, configured from the environment as an app's is."""
    for name in ("DAPR_HTTP_ENDPOINT", "DAPR_GRPC_ENDPOINT", "DAPR_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAPR_RUNTIME_HOST", LOOPBACK)
    monkeypatch.setenv("DAPR_HTTP_PORT", str(sidecar.port))
    monkeypatch.setenv("DAPR_GRPC_PORT", str(sidecar.grpc_port))
    monkeypatch.setenv("DAPR_HEALTH_TIMEOUT", "5")
    with DaprClient() as found:
        yield found


def _reason(error: grpc.RpcError) -> str:
    """The ``ErrorInfo`` reason of an error answer. ``DaprGrpcError.error_code()`` reads it; the
    SDK raises that only for some calls, and grpc's own error (with the same trailers) for others."""
    if isinstance(error, DaprGrpcError):
        reason: str = error.error_code()
        return reason
    status = rpc_status.from_call(error)
    assert status is not None, "no google.rpc.Status in the trailers"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            assert info.domain == "dapr.io"
            return info.reason
    raise AssertionError(f"no ErrorInfo in {status}")


# -- state -----------------------------------------------------------------------------------------


def test_state_saved_read_and_deleted_with_etags(client: DaprClient, sidecar: L8Process) -> None:
    client.save_state("statestore", "order-1", '{"qty": 1}')
    first = client.get_state("statestore", "order-1")
    assert first.data == b'{"qty": 1}' and first.etag

    client.save_state("statestore", "order-1", '{"qty": 2}', etag=first.etag)
    second = client.get_state("statestore", "order-1")
    assert second.data == b'{"qty": 2}' and second.etag != first.etag

    with pytest.raises(DaprGrpcError) as stale:
        client.save_state(
            "statestore",
            "order-1",
            '{"qty": 3}',
            etag=first.etag,
            options=StateOptions(concurrency=Concurrency.first_write),
        )
    assert stale.value.code() == grpc.StatusCode.ABORTED
    assert _reason(stale.value) == "ERR_STATE_SAVE"
    assert "etag" in (stale.value.details() or "")
    assert client.get_state("statestore", "order-1").data == b'{"qty": 2}'  # nothing written

    with pytest.raises(DaprGrpcError) as stale_delete:
        client.delete_state("statestore", "order-1", etag=first.etag)
    assert stale_delete.value.code() == grpc.StatusCode.ABORTED
    assert _reason(stale_delete.value) == "ERR_STATE_DELETE"

    # The same item seen through the HTTP API: one store behind both transports.
    over_http = httpx.get(f"{sidecar.url}/v1.0/state/statestore/order-1")
    assert (over_http.content, over_http.headers["etag"]) == (b'{"qty": 2}', second.etag)

    client.delete_state("statestore", "order-1", etag=second.etag)
    gone = client.get_state("statestore", "order-1")
    assert (gone.data, gone.etag) == (b"", "")


def test_state_in_bulk_and_in_a_transaction(client: DaprClient) -> None:
    client.save_bulk_state(
        "statestore", [StateItem("bulk-a", '{"n": 1}'), StateItem("bulk-b", '{"n": 2}', metadata={})]
    )
    items = client.get_bulk_state("statestore", ["bulk-a", "bulk-missing", "bulk-b"]).items
    assert [(i.key, i.data) for i in items] == [
        ("bulk-a", b'{"n": 1}'),
        ("bulk-missing", b""),
        ("bulk-b", b'{"n": 2}'),
    ]
    assert items[0].etag and not items[1].etag

    client.execute_state_transaction(
        "statestore",
        [
            TransactionalStateOperation(key="bulk-c", data='{"n": 3}'),
            TransactionalStateOperation(key="bulk-a", operation_type=TransactionOperationType.delete),
        ],
    )
    after = client.get_bulk_state("statestore", ["bulk-a", "bulk-c"]).items
    assert [(i.key, i.data) for i in after] == [("bulk-a", b""), ("bulk-c", b'{"n": 3}')]

    with pytest.raises(DaprGrpcError) as stale:
        client.execute_state_transaction(
            "statestore",
            [
                TransactionalStateOperation(key="bulk-d", data='{"n": 4}'),
                TransactionalStateOperation(key="bulk-c", data='{"n": 5}', etag="not-its-etag"),
            ],
        )
    assert stale.value.code() == grpc.StatusCode.INTERNAL
    assert _reason(stale.value) == "ERR_STATE_TRANSACTION"
    assert client.get_state("statestore", "bulk-d").data == b""  # all or nothing


@pytest.mark.filterwarnings("ignore:The State Store Query API is an Alpha:UserWarning")  # the SDK's notice
def test_state_query(client: DaprClient) -> None:
    for index, city in enumerate(["Oslo", "Lima", "Oslo"]):
        client.save_state("statestore", f"city-{index}", orjson.dumps({"city": city, "n": index}).decode())
    query = orjson.dumps({"filter": {"EQ": {"city": "Oslo"}}, "sort": [{"key": "n"}]}).decode()
    found = client.query_state("statestore", query)
    assert [(r.key, orjson.loads(r.value)["n"]) for r in found.results] == [("city-0", 0), ("city-2", 2)]


def test_state_errors_carry_daprs_codes(client: DaprClient) -> None:
    with pytest.raises(DaprGrpcError) as unknown:
        client.get_state("nostore", "k")
    assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _reason(unknown.value) == "DAPR_STATE_NOT_FOUND"
    assert unknown.value.details() == "state store nostore is not found"

    with pytest.raises(DaprGrpcError) as illegal:
        client.save_state("statestore", "a||b", "x")
    assert illegal.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _reason(illegal.value) == "DAPR_STATE_ILLEGAL_KEY"


# -- publish, bindings, secrets --------------------------------------------------------------------


def test_published_events_reach_the_subscriber_app(client: DaprClient, app: App, sidecar: L8Process) -> None:
    deadline = time.monotonic() + 10
    while not httpx.get(f"{sidecar.url}/v1.0/metadata").json().get("subscriptions"):
        assert time.monotonic() < deadline, "the app's subscriptions were not loaded"
        time.sleep(0.05)
    seen = len(app.events)
    client.publish_event(
        "pubsub", "orders", orjson.dumps({"orderId": 11}), data_content_type="application/json"
    )
    event = app.wait_for_events(seen + 1)[seen]
    assert event["data"] == {"orderId": 11}
    assert (event["source"], event["topic"], event["pubsubname"]) == ("grpc-app", "orders", "pubsub")

    failed = client.publish_events(
        "pubsub",
        "orders",
        [orjson.dumps({"orderId": 12}), orjson.dumps({"orderId": 13})],
        data_content_type="application/json",
    )
    assert failed.failed_entries == []
    assert {e["data"]["orderId"] for e in app.wait_for_events(seen + 3)[seen + 1 :]} == {12, 13}

    with pytest.raises(DaprGrpcError) as unknown:
        client.publish_event("nopubsub", "orders", b"{}")
    assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _reason(unknown.value) == "DAPR_PUBSUB_NOT_FOUND"


def test_output_bindings(client: DaprClient) -> None:
    client.invoke_binding("files", "create", b"hello over grpc", {"fileName": "a.txt"})
    answer = client.invoke_binding("files", "get", b"", {"fileName": "a.txt"})
    assert answer.data == b"hello over grpc"

    with pytest.raises(grpc.RpcError) as unknown:
        client.invoke_binding("nobinding", "create", b"x")
    assert unknown.value.code() == grpc.StatusCode.INTERNAL
    assert _reason(unknown.value) == "ERR_INVOKE_OUTPUT_BINDING"


def test_secrets(client: DaprClient) -> None:
    assert client.get_secret("vault", "api-key").secret == {"api-key": SECRET}
    assert client.get_bulk_secret("vault").secrets == {
        "api-key": {"api-key": SECRET},
        "db:user": {"db:user": "u"},
    }
    with pytest.raises(grpc.RpcError) as unknown:
        client.get_secret("novault", "api-key")
    assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _reason(unknown.value) == "ERR_SECRET_STORE_NOT_FOUND"


# -- configuration and locks -----------------------------------------------------------------------


def _save_configuration(sidecar: L8Process, key: str, value: str) -> None:
    answer = httpx.post(
        f"{sidecar.url}/v1.0-alpha1/configuration/configstore",
        json={"items": [{"key": key, "content": value}]},
    )
    assert answer.status_code == 204, answer.text


def test_configuration_get_and_subscribe(client: DaprClient, sidecar: L8Process) -> None:
    _save_configuration(sidecar, "feature", "off")
    items = client.get_configuration("configstore", ["feature"]).items
    assert items["feature"].value == "off"

    updates: list[tuple[str, dict[str, str]]] = []

    def handler(subscription_id: str, response: Any) -> None:
        updates.append((subscription_id, {k: v.value for k, v in response.items.items()}))

    subscription_id = client.subscribe_configuration("configstore", ["feature"], handler)
    assert subscription_id
    _save_configuration(sidecar, "feature", "on")
    deadline = time.monotonic() + 10
    while not updates:
        assert time.monotonic() < deadline, "no configuration update arrived"
        time.sleep(0.02)
    assert updates[0] == (subscription_id, {"feature": "on"})
    assert client.unsubscribe_configuration("configstore", subscription_id) is True
    with pytest.raises(grpc.RpcError) as gone:  # daprd answers an unknown id with an error
        client.unsubscribe_configuration("configstore", subscription_id)
    assert gone.value.code() == grpc.StatusCode.INTERNAL

    with pytest.raises(grpc.RpcError) as unknown:
        client.get_configuration("nostore", ["feature"])
    assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _reason(unknown.value) == "ERR_CONFIGURATION_STORE_NOT_FOUND"


@pytest.mark.filterwarnings("ignore:The Distributed Lock API is an Alpha:UserWarning")  # the SDK's notice
def test_locks(client: DaprClient) -> None:
    with client.try_lock("lockstore", "printer", "alice", 30) as held:
        assert held.success
        assert not client.try_lock("lockstore", "printer", "bob", 30).success
        refused = client.unlock("lockstore", "printer", "bob")
        assert refused.status == UnlockResponseStatus.lock_belongs_to_others
    # Leaving the block unlocked it: bob gets it now.
    assert client.try_lock("lockstore", "printer", "bob", 30).success
    assert client.unlock("lockstore", "printer", "bob").status == UnlockResponseStatus.success

    with pytest.raises(grpc.RpcError) as unknown:
        client.try_lock("nolocks", "printer", "carol", 30)
    assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _reason(unknown.value) == "ERR_LOCK_STORE_NOT_FOUND"


# -- invocation, metadata --------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:invoke_method with protocol gRPC is deprecated:DeprecationWarning")
def test_invoke_method_over_grpc(sidecar: L8Process, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAPR_RUNTIME_HOST", LOOPBACK)
    monkeypatch.setenv("DAPR_HTTP_PORT", str(sidecar.port))
    monkeypatch.setenv("DAPR_GRPC_PORT", str(sidecar.grpc_port))
    monkeypatch.setenv("DAPR_API_METHOD_INVOCATION_PROTOCOL", "grpc")  # read when a client is made
    with DaprClient() as client:
        _invoke_over_grpc(client)


def _invoke_over_grpc(client: DaprClient) -> None:
    answer = client.invoke_method(
        "grpc-app",
        "echo/orders",
        data=b'{"id": 1}',
        content_type="application/json",
        http_verb="PUT",
        http_querystring=(("page", "2"),),
    )
    echoed = orjson.loads(answer.data)
    assert (echoed["method"], echoed["path"], echoed["query"]) == ("PUT", "/echo/orders", "page=2")
    assert (echoed["body"], echoed["contentType"]) == ('{"id": 1}', "application/json")
    assert echoed["caller"] == "grpc-app"
    assert answer.content_type.startswith("application/json")

    with pytest.raises(grpc.RpcError) as missing:  # the app's 404: daprd's NOT_FOUND, its body the message
        client.invoke_method("grpc-app", "teapot", data=b"", http_verb="POST")
    assert (missing.value.code(), missing.value.details()) == (grpc.StatusCode.NOT_FOUND, "not here")
    assert ("dapr-http-status", "404") in missing.value.initial_metadata()


def test_metadata(client: DaprClient) -> None:
    client.set_metadata("team", "payments")
    found = client.get_metadata()
    assert found.application_id == "grpc-app"
    assert {(c.name, c.type) for c in found.registered_components} >= {
        ("statestore", "state.sqlite"),
        ("pubsub", "pubsub.in-memory"),
        ("vault", "secretstores.local.file"),
    }
    assert found.extended_metadata["team"] == "payments"


# -- the API token, shutdown -----------------------------------------------------------------------


def test_api_token_guards_the_grpc_api(l8: L8Launcher, monkeypatch: pytest.MonkeyPatch) -> None:
    sidecar = l8(app_id="guarded", env={"DAPR_API_TOKEN": "t0ken"})
    monkeypatch.setenv("DAPR_RUNTIME_HOST", LOOPBACK)
    monkeypatch.setenv("DAPR_HTTP_PORT", str(sidecar.port))
    monkeypatch.setenv("DAPR_GRPC_PORT", str(sidecar.grpc_port))
    monkeypatch.setenv("DAPR_API_TOKEN", "t0ken")
    with DaprClient() as client:  # the SDK sends DAPR_API_TOKEN as dapr-api-token
        client.save_state("statestore", "k", "v")
        assert client.get_state("statestore", "k").data == b"v"
    monkeypatch.setenv("DAPR_API_TOKEN", "wrong")
    with DaprClient() as client, pytest.raises(DaprGrpcError) as refused:
        client.get_state("statestore", "k")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_shutdown_stops_the_sidecar(l8: L8Launcher, monkeypatch: pytest.MonkeyPatch) -> None:
    sidecar = l8(app_id="stopping")
    monkeypatch.setenv("DAPR_RUNTIME_HOST", LOOPBACK)
    monkeypatch.setenv("DAPR_HTTP_PORT", str(sidecar.port))
    monkeypatch.setenv("DAPR_GRPC_PORT", str(sidecar.grpc_port))
    with DaprClient() as client:
        client.shutdown()
    assert sidecar.wait_exit() == 0
