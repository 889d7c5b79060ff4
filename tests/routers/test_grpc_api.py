"""What only the gRPC transport has: the error door's status codes and ``google.rpc`` details, the
API token on call metadata, health and reflection, message size limits, the configuration
stream, UNIMPLEMENTED for what l8 does not serve, and start-up on a taken port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import orjson
import pytest
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import (
    binding_pb2,
    configuration_pb2,
    dapr_pb2,
    dapr_pb2_grpc,
    invoke_pb2,
    metadata_pb2,
    pubsub_pb2,
    state_pb2,
    workflow_pb2,
)
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from app.factory import create_app
from app.settings import Settings
from app.startup import StartupError
from components.pubsub.base import SubscribeRequest
from observability.metrics.exposition import render
from routers.grpc.errors import grpc_code, to_status
from services import errors
from tests.echo_app import echo_app
from tests.routers.conftest import Sidecar, StartSidecar, component
from tests.servers import LOOPBACK

STORE = component("statestore", "state.in-memory")


async def _channel(sidecar: Sidecar) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(f"{LOOPBACK}:{sidecar.app.state.grpc_api.port}")


@pytest.fixture
async def stub(start_sidecar: StartSidecar) -> AsyncIterator[dapr_pb2_grpc.DaprStub]:
    sidecar = await start_sidecar(
        STORE, component("pubsub", "pubsub.in-memory"), component("config", "configuration.in-memory")
    )
    async with await _channel(sidecar) as channel:
        yield dapr_pb2_grpc.DaprStub(channel)


def _details(error: grpc.aio.AioRpcError) -> list[Any]:
    status = rpc_status.from_call(error)
    assert status is not None
    unpacked = []
    for detail in status.details:
        for kind in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.ResourceInfo,
            error_details_pb2.BadRequest,
            error_details_pb2.Help,
        ):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                unpacked.append(message)
    return unpacked


# -- the error door --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.state_store_not_found("s", "app"), code_pb2.INVALID_ARGUMENT),
        (errors.state_store_not_configured("s", "app"), code_pb2.FAILED_PRECONDITION),
        (errors.transactions_not_supported("s"), code_pb2.UNIMPLEMENTED),
        (errors.query_not_supported("s"), code_pb2.INTERNAL),
        (errors.pubsub_not_found("p", {}), code_pb2.INVALID_ARGUMENT),
        (errors.pubsub_forbidden("p", "t", "app"), code_pb2.PERMISSION_DENIED),
        (errors.secret_store_not_found("v"), code_pb2.INVALID_ARGUMENT),
        (errors.secret_permission_denied("k", "v"), code_pb2.PERMISSION_DENIED),
        (errors.lock_store_not_configured(), code_pb2.FAILED_PRECONDITION),
        (errors.configuration_store_not_found("c"), code_pb2.INVALID_ARGUMENT),
        (errors.invoke_output_binding_failed("b", "boom"), code_pb2.INTERNAL),
        (errors.malformed("bad"), code_pb2.INVALID_ARGUMENT),
    ],
)
def test_each_catalogue_error_has_daprds_grpc_code(error: errors.ApiError, code: int) -> None:
    assert grpc_code(error) == code


def test_an_error_without_error_info_gets_its_legacy_code_as_the_reason() -> None:
    status = to_status(errors.lock_store_not_found("locks"))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.details == "lock store locks not found"
    ((key, value),) = status.trailing_metadata
    assert key == "grpc-status-details-bin"
    from google.rpc import status_pb2

    decoded = status_pb2.Status.FromString(value)
    (packed,) = decoded.details
    info = error_details_pb2.ErrorInfo()
    assert isinstance(packed, any_pb2.Any) and packed.Unpack(info)
    assert (info.reason, info.domain) == ("ERR_LOCK_STORE_NOT_FOUND", "dapr.io")


async def test_an_illegal_key_carries_resource_info_and_the_field_violation(
    stub: dapr_pb2_grpc.DaprStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetState(state_pb2.GetStateRequest(store_name="statestore", key="a||b"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info, resource, bad = _details(refused.value)
    assert info.reason == "DAPR_STATE_ILLEGAL_KEY"
    assert (resource.resource_type, resource.resource_name) == ("state", "statestore")
    assert bad.field_violations[0].field == "a||b"


async def test_a_save_without_a_key_is_refused(stub: dapr_pb2_grpc.DaprStub) -> None:
    request = state_pb2.SaveStateRequest(
        store_name="statestore",
        states=[common_pb2.StateItem(key="ok", value=b"1"), common_pb2.StateItem(value=b"2")],
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.SaveState(request)
    assert (refused.value.code(), refused.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "state key cannot be empty",
    )
    missing = await stub.GetState(state_pb2.GetStateRequest(store_name="statestore", key="ok"))
    assert missing.data == b""  # nothing of the request was written


async def test_a_store_without_transactions_answers_unimplemented(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(component("plain", "state.example"))
    async with await _channel(sidecar) as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        request = state_pb2.ExecuteStateTransactionRequest(storeName="plain")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ExecuteStateTransaction(request)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        info, help_links = _details(refused.value)
        assert info.reason == "DAPR_STATE_TRANSACTIONS_NOT_SUPPORTED"
        assert help_links.links[0].url.startswith("https://docs.dapr.io/")

        with pytest.raises(grpc.aio.AioRpcError) as no_stores:
            await stub.GetState(state_pb2.GetStateRequest(store_name="plain2", key="k"))
        assert no_stores.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_no_state_store_at_all_is_failed_precondition(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar()
    async with await _channel(sidecar) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await dapr_pb2_grpc.DaprStub(channel).GetState(state_pb2.GetStateRequest(store_name="s", key="k"))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _details(refused.value)[0].reason == "DAPR_STATE_NOT_CONFIGURED"


async def test_bulk_publish_entries_need_distinct_ids(stub: dapr_pb2_grpc.DaprStub) -> None:
    entry = pubsub_pb2.BulkPublishRequestEntry(entry_id="1", event=b"{}", content_type="application/json")
    request = pubsub_pb2.BulkPublishRequest(pubsub_name="pubsub", topic="t", entries=[entry, entry])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.BulkPublishEvent(request)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _details(refused.value)[-1].reason == "DAPR_PUBSUB_MARSHAL_EVENTS"
    ok = await stub.BulkPublishEventAlpha1(
        pubsub_pb2.BulkPublishRequest(pubsub_name="pubsub", topic="t", entries=[entry])
    )
    assert list(ok.failedEntries) == []


async def test_what_l8_does_not_serve_is_unimplemented(stub: dapr_pb2_grpc.DaprStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetWorkflowBeta1(workflow_pb2.GetWorkflowRequest(instance_id="w-1"))
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


# -- configuration stream --------------------------------------------------------------------------


async def test_a_configuration_stream_carries_its_id_then_each_change(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(component("config", "configuration.in-memory"))
    async with await _channel(sidecar) as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        stream = stub.SubscribeConfiguration(
            configuration_pb2.SubscribeConfigurationRequest(store_name="config", keys=["flag"])
        )
        first = await stream.read()
        assert first.id and not first.items
        saved = await sidecar.client.post(
            "/v1.0-alpha1/configuration/config", json={"items": [{"key": "flag", "content": "on"}]}
        )
        assert saved.status_code == 204
        change = await asyncio.wait_for(stream.read(), 5)
        assert change.id == first.id and change.items["flag"].value == "on"
        answer = await stub.UnsubscribeConfigurationAlpha1(
            configuration_pb2.UnsubscribeConfigurationRequest(store_name="config", id=first.id)
        )
        assert answer.ok
        assert await asyncio.wait_for(stream.read(), 5) is grpc.aio.EOF  # the stream ends with it

        missing = stub.SubscribeConfiguration(
            configuration_pb2.SubscribeConfigurationRequest(store_name="nope")
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await missing.read()
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_stream_whose_client_leaves_ends_its_subscription(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(component("config", "configuration.in-memory"))
    service = sidecar.app.state.runtime.services.configuration
    async with await _channel(sidecar) as channel:
        stream = dapr_pb2_grpc.DaprStub(channel).SubscribeConfiguration(
            configuration_pb2.SubscribeConfigurationRequest(store_name="config", keys=["flag"])
        )
        await stream.read()
        assert len(service.describe()) == 1
        stream.cancel()
    for _ in range(100):
        if not service.describe():
            break
        await asyncio.sleep(0.02)
    assert service.describe() == []


# -- the token, health, reflection, limits, lifecycle ----------------------------------------------


async def test_the_api_token_is_required_on_daprs_service(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(STORE, api_token="s3cret")
    async with await _channel(sidecar) as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        request = metadata_pb2.GetMetadataRequest()
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetMetadata(request)
        assert (missing.value.code(), missing.value.details()) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "missing api token in request metadata",
        )
        with pytest.raises(grpc.aio.AioRpcError) as wrong:
            await stub.GetMetadata(request, metadata=(("dapr-api-token", "nope"),))
        assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
        found = await stub.GetMetadata(request, metadata=(("dapr-api-token", "s3cret"),))
        assert found.id == sidecar.app_id
        # Probes and tools need no token.
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_and_reflection(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(STORE)
    async with await _channel(sidecar) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        answer = await health.Check(health_pb2.HealthCheckRequest(service="dapr.proto.runtime.v1.Dapr"))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {service.name async for reply in replies for service in reply.list_services_response.service}
        assert {"dapr.proto.runtime.v1.Dapr", "grpc.health.v1.Health"} <= names


async def test_not_ready_answers_unavailable(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(STORE)
    services, sidecar.app.sidecar.services = sidecar.app.sidecar.services, None
    try:
        async with await _channel(sidecar) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await dapr_pb2_grpc.DaprStub(channel).GetMetadata(metadata_pb2.GetMetadataRequest())
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        sidecar.app.sidecar.services = services


async def test_messages_are_capped_by_max_body_size(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(STORE, max_body_size="4Ki")
    async with await _channel(sidecar) as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        big = state_pb2.SaveStateRequest(
            store_name="statestore", states=[common_pb2.StateItem(key="k", value=b"x" * 8192)]
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.SaveState(big)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        small = state_pb2.SaveStateRequest(
            store_name="statestore", states=[common_pb2.StateItem(key="k", value=b"x")]
        )
        await stub.SaveState(small)


async def test_shutdown_asks_the_server_to_stop(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(STORE)
    stopped: list[bool] = []
    sidecar.app.sidecar.shutdown.connect(lambda: stopped.append(True))
    async with await _channel(sidecar) as channel:
        await dapr_pb2_grpc.DaprStub(channel).Shutdown(dapr_pb2.ShutdownRequest())
    await asyncio.sleep(0.2)
    assert stopped == [True]


async def test_a_taken_port_fails_start_up(tmp_path: Any) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = create_app(Settings.load({"data_dir": str(tmp_path), "grpc_port": port}))
        with pytest.raises(
            StartupError, match=rf"grpc_port \(--dapr-grpc-port\): cannot listen on .*:{port}"
        ):
            async with app.lifespan():
                pass


async def test_the_grpc_api_can_be_switched_off(tmp_path: Any) -> None:
    app = create_app(Settings.load({"data_dir": str(tmp_path), "enable_grpc": False}))
    async with app.lifespan():
        assert app.state.grpc_api is None
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://l8") as client:
            assert (await client.get("/v1.0/healthz")).status_code == 204


# -- invocation ------------------------------------------------------------------------------------


async def test_invoke_service_reaches_the_app_with_verb_query_and_metadata(
    start_sidecar: StartSidecar,
) -> None:
    async with echo_app() as app_port:
        sidecar = await start_sidecar(STORE, app_port=app_port)
        async with await _channel(sidecar) as channel:
            stub = dapr_pb2_grpc.DaprStub(channel)
            message = common_pb2.InvokeRequest(
                method="orders/a b",
                data=any_pb2.Any(value=b"hello"),
                content_type="text/plain",
                http_extension=common_pb2.HTTPExtension(
                    verb=common_pb2.HTTPExtension.PUT, querystring="x=1&y=2"
                ),
            )
            call = stub.InvokeService(
                invoke_pb2.InvokeServiceRequest(id=sidecar.app_id, message=message),
                metadata=(("x-team", "payments"),),
            )
            answer = await call
            echoed = orjson.loads(answer.data.value)
            assert (echoed["method"], echoed["path"], echoed["query"]) == ("PUT", "/orders/a%20b", "x=1&y=2")
            assert echoed["body"] == "hello"
            headers = {name.lower(): value for name, value in echoed["headers"]}
            assert headers["content-type"] == "text/plain"
            assert headers["x-team"] == "payments"
            assert headers["dapr-caller-app-id"] == sidecar.app_id
            assert answer.content_type.startswith("application/json")
            assert ("dapr-http-status", "200") in tuple(await call.initial_metadata())

            failing = common_pb2.InvokeRequest(method="status/503")  # no http_extension: POST
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.InvokeService(invoke_pb2.InvokeServiceRequest(id=sidecar.app_id, message=failing))
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert orjson.loads(refused.value.details() or "") == {"status": 503}
            assert ("dapr-http-status", "503") in tuple(refused.value.initial_metadata() or ())


async def test_invoke_service_without_an_app_id_is_refused(stub: dapr_pb2_grpc.DaprStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.InvokeService(
            invoke_pb2.InvokeServiceRequest(message=common_pb2.InvokeRequest(method="m"))
        )
    assert _details(refused.value)[0].reason == "ERR_DIRECT_INVOKE"


# -- publish: the event's trace --------------------------------------------------------------------

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize("tracing", [False, True], ids=["tracing off", "tracing on"])
async def test_a_published_event_continues_the_callers_trace(
    start_sidecar: StartSidecar, tracing: bool
) -> None:
    settings = {"dapr_configuration": {"tracing": {"samplingRate": "1"}}} if tracing else {}
    sidecar = await start_sidecar(component("pubsub", "pubsub.in-memory"), **settings)
    captured: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(message: Any) -> None:
        captured.put_nowait(message)

    broker = sidecar.app.state.runtime.components.of("pubsub")["pubsub"].instance
    await broker.subscribe(SubscribeRequest("orders"), handler)
    async with await _channel(sidecar) as channel:
        request = pubsub_pb2.PublishEventRequest(
            pubsub_name="pubsub", topic="orders", data=b'{"n": 1}', data_content_type="application/json"
        )
        await dapr_pb2_grpc.DaprStub(channel).PublishEvent(request, metadata=(("traceparent", PARENT),))
    event = orjson.loads((await asyncio.wait_for(captured.get(), 5)).data)
    assert event["data"] == {"n": 1}
    version, trace_id, span_id, flags = event["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01")
    assert span_id not in ("00f067aa0ba902b7", "0" * 16)


async def test_api_logging_logs_each_grpc_call_with_its_status(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(STORE, enable_api_logging=True)
    async with await _channel(sidecar) as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        with capture_logs() as logs:
            await stub.GetState(state_pb2.GetStateRequest(store_name="statestore", key="k"))
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetState(state_pb2.GetStateRequest(store_name="nope", key="k"))
    calls = [(e["log_level"], e["method"], e["status"]) for e in logs if e["event"] == "api call"]
    assert calls == [
        ("info", "/dapr.proto.runtime.v1.Dapr/GetState", "OK"),
        ("info", "/dapr.proto.runtime.v1.Dapr/GetState", "INVALID_ARGUMENT"),
    ]


async def test_grpc_calls_are_counted_in_daprs_grpc_server_metrics(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(STORE)
    async with await _channel(sidecar) as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        for _ in range(2):
            await stub.GetState(state_pb2.GetStateRequest(store_name="statestore", key="k"))
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetState(state_pb2.GetStateRequest(store_name="nope", key="k"))
    text = render(sidecar.app.state.runtime.metrics.registry).decode()
    found = {
        (s.name, s.labels["grpc_server_status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name in ("dapr_grpc_io_server_completed_rpcs", "dapr_grpc_io_server_server_latency_count")
        and s.labels.get("grpc_server_method") == "/dapr.proto.runtime.v1.Dapr/GetState"
    }
    assert found == {
        ("dapr_grpc_io_server_completed_rpcs", "OK"): 2.0,
        ("dapr_grpc_io_server_completed_rpcs", "INVALID_ARGUMENT"): 1.0,
        ("dapr_grpc_io_server_server_latency_count", "OK"): 2.0,
        ("dapr_grpc_io_server_server_latency_count", "INVALID_ARGUMENT"): 1.0,
    }


async def test_a_body_limit_beyond_grpcs_int_caps_messages_at_its_largest(
    start_sidecar: StartSidecar,
) -> None:
    sidecar = await start_sidecar(STORE, max_body_size="2Gi")
    async with await _channel(sidecar) as channel:
        await dapr_pb2_grpc.DaprStub(channel).GetState(
            state_pb2.GetStateRequest(store_name="statestore", key="k")
        )


async def test_delete_bulk_state_is_all_or_nothing_on_a_transactional_store(
    stub: dapr_pb2_grpc.DaprStub,
) -> None:
    items = [common_pb2.StateItem(key=key, value=b"1") for key in ("a", "b", "c")]
    await stub.SaveState(state_pb2.SaveStateRequest(store_name="statestore", states=items))
    etag = (await stub.GetState(state_pb2.GetStateRequest(store_name="statestore", key="a"))).etag
    stale = common_pb2.StateItem(key="b", etag=common_pb2.Etag(value="999"))
    request = state_pb2.DeleteBulkStateRequest(
        store_name="statestore",
        states=[common_pb2.StateItem(key="a", etag=common_pb2.Etag(value=etag)), stale],
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.DeleteBulkState(request)
    assert refused.value.code() == grpc.StatusCode.ABORTED
    assert _details(refused.value)[0].reason == "ERR_STATE_BULK_DELETE"
    kept = await stub.GetBulkState(state_pb2.GetBulkStateRequest(store_name="statestore", keys=["a", "b"]))
    assert [item.data for item in kept.items] == [b"1", b"1"]  # nothing deleted
    await stub.DeleteBulkState(
        state_pb2.DeleteBulkStateRequest(
            store_name="statestore", states=[common_pb2.StateItem(key="a"), common_pb2.StateItem(key="b")]
        )
    )
    left = await stub.GetBulkState(
        state_pb2.GetBulkStateRequest(store_name="statestore", keys=["a", "b", "c"])
    )
    assert [item.data for item in left.items] == [b"", b"", b"1"]


async def test_invoke_binding_passes_data_and_metadata(start_sidecar: StartSidecar, tmp_path: Any) -> None:
    sidecar = await start_sidecar(
        component("files", "bindings.localstorage", rootPath=str(tmp_path / "files"))
    )
    async with await _channel(sidecar) as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        create = binding_pb2.InvokeBindingRequest(
            name="files", operation="create", data=b"hello", metadata={"fileName": "a.txt"}
        )
        await stub.InvokeBinding(create, metadata=(("traceparent", PARENT),))
        answer = await stub.InvokeBinding(
            binding_pb2.InvokeBindingRequest(name="files", operation="get", metadata={"fileName": "a.txt"})
        )
        assert answer.data == b"hello"
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.InvokeBinding(binding_pb2.InvokeBindingRequest(name="files", operation="explode"))
    assert refused.value.code() == grpc.StatusCode.INTERNAL
    assert "does not support operation explode" in (refused.value.details() or "")
