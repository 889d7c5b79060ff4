"""Layotto's gRPC service goes through the same door as Dapr's: errors with their status and
``google.rpc`` details, the API log and ``dapr_grpc_io_server_*`` metrics under its own method
names, UNAVAILABLE before start-up ends, health and reflection; and a configuration stream's
subscriptions end when its client leaves."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from observability.metrics.exposition import render
from routers.grpc.layotto.proto import runtime_pb2 as pb
from routers.grpc.layotto.proto import runtime_pb2_grpc
from tests.routers.conftest import Sidecar, StartSidecar, component
from tests.servers import LOOPBACK

SERVICE = "spec.proto.runtime.v1.Runtime"
IDS = component("ids", "sequencer.in-memory")


def _channel(sidecar: Sidecar) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(f"{LOOPBACK}:{sidecar.app.state.grpc_api.port}")


async def test_errors_carry_the_catalogues_code_and_details(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(IDS)
    async with _channel(sidecar) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await runtime_pb2_grpc.RuntimeStub(channel).GetNextId(
                pb.GetNextIdRequest(store_name="nope", key="k")
            )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(refused.value)
    assert status is not None
    reasons = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reasons.append(info.reason)
    assert reasons == ["ERR_SEQUENCER_STORE_NOT_FOUND"]


async def test_calls_are_logged_and_counted_under_layottos_method(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(IDS, enable_api_logging=True)
    method = f"/{SERVICE}/GetNextId"
    async with _channel(sidecar) as channel:
        runtime = runtime_pb2_grpc.RuntimeStub(channel)
        with capture_logs() as logs:
            await runtime.GetNextId(pb.GetNextIdRequest(store_name="ids", key="k"))
            with pytest.raises(grpc.aio.AioRpcError):
                await runtime.GetNextId(pb.GetNextIdRequest(store_name="ids", key=""))
    calls = [(e["method"], e["status"]) for e in logs if e["event"] == "api call"]
    assert calls == [(method, "OK"), (method, "INVALID_ARGUMENT")]
    text = render(sidecar.app.state.runtime.metrics.registry).decode()
    counted = {
        s.labels["grpc_server_status"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "dapr_grpc_io_server_completed_rpcs" and s.labels.get("grpc_server_method") == method
    }
    assert counted == {"OK": 1.0, "INVALID_ARGUMENT": 1.0}


async def test_not_ready_answers_unavailable(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(IDS)
    services, sidecar.app.sidecar.services = sidecar.app.sidecar.services, None
    try:
        async with _channel(sidecar) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await runtime_pb2_grpc.RuntimeStub(channel).GetNextId(
                    pb.GetNextIdRequest(store_name="ids", key="k")
                )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        sidecar.app.sidecar.services = services


async def test_health_and_reflection_know_layottos_service(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(IDS)
    async with _channel(sidecar) as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE)
        )
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {service.name async for reply in replies for service in reply.list_services_response.service}
    assert SERVICE in names


async def test_a_stream_whose_client_leaves_ends_its_subscriptions(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(component("config", "configuration.in-memory"))
    service = sidecar.app.state.runtime.services.configuration
    async with _channel(sidecar) as channel:
        stream = runtime_pb2_grpc.RuntimeStub(channel).SubscribeConfiguration()
        await stream.write(pb.SubscribeConfigurationRequest(store_name="config", keys=["a"]))
        await stream.write(pb.SubscribeConfigurationRequest(store_name="config", keys=["b"], group="g"))
        for _ in range(100):
            if len(service.describe()) == 2:
                break
            await asyncio.sleep(0.02)
        assert len(service.describe()) == 2
        saved = await sidecar.client.post(
            "/v1.0-alpha1/configuration/config", json={"items": [{"key": "b", "content": "on", "group": "g"}]}
        )
        assert saved.status_code == 204
        change = await asyncio.wait_for(stream.read(), 5)
        assert [(i.key, i.content, i.group) for i in change.items] == [("b", "on", "g")]
        stream.cancel()
    for _ in range(100):
        if not service.describe():
            break
        await asyncio.sleep(0.02)
    assert service.describe() == []
