"""Tracing of gRPC API calls through a real ``l8 run`` into a real OTLP receiver: daprd's CLIENT
span per call (routers/grpc/tracing.py), under the caller's ``traceparent`` metadata, with its
attributes and status, and the component's span and the invoked app's call under it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import orjson
import pytest
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import dapr_pb2_grpc, invoke_pb2, pubsub_pb2, state_pb2
from google.protobuf import any_pb2

from tests.e2e.process import L8Launcher, write_component
from tests.e2e.test_tracing import (
    CALLER_SPAN,
    TRACE_ID,
    TRACEPARENT,
    by_name,
    otel,
    started,
    tracing_resources,
)
from tests.echo_app import echo_app
from tests.otlp_receiver import OtlpHttpReceiver

pytestmark = pytest.mark.e2e
DAPR = "/dapr.proto.runtime.v1.Dapr/"


@pytest.fixture
def receiver() -> Iterator[OtlpHttpReceiver]:
    with OtlpHttpReceiver() as found:
        yield found


@pytest.fixture
async def app_port() -> AsyncIterator[int]:
    async with echo_app() as port:
        yield port


async def test_grpc_calls_get_daprds_span_with_the_component_and_the_app_under_it(
    l8: L8Launcher, receiver: OtlpHttpReceiver, app_port: int, tmp_path: Path
) -> None:
    folder = tracing_resources(tmp_path / "resources", otel(receiver.endpoint))
    write_component(folder, "statestore", "state.sqlite", {"connectionString": str(tmp_path / "s.db")})
    write_component(folder, "pubsub", "pubsub.in-memory")
    sidecar = await started(l8, app_id="traced", resources=[folder], args=["--app-port", str(app_port)])
    caller = (("traceparent", TRACEPARENT), ("dapr-team", "payments"))
    async with grpc.aio.insecure_channel(sidecar.grpc_address) as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        await stub.GetState(state_pb2.GetStateRequest(store_name="statestore", key="k"), metadata=caller)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetState(state_pb2.GetStateRequest(store_name="nostore", key="k"), metadata=caller)
        await stub.PublishEvent(
            pubsub_pb2.PublishEventRequest(pubsub_name="pubsub", topic="orders", data=b"{}"), metadata=caller
        )
        message = common_pb2.InvokeRequest(method="orders", data=any_pb2.Any(value=b"hi"))
        answer = await stub.InvokeService(
            invoke_pb2.InvokeServiceRequest(id="traced", message=message), metadata=caller
        )
    echoed = {name.lower(): value for name, value in orjson.loads(answer.data.value)["headers"]}
    spans = receiver.wait_for(
        lambda spans: (
            {"state/get", "CallLocal/traced/orders", f"{DAPR}PublishEvent"} <= {s.name for s in spans}
            and sum(s.name == f"{DAPR}GetState" for s in spans) == 2
        )
    )
    got, refused = sorted(
        (s for s in spans if s.name == f"{DAPR}GetState"), key=lambda s: s.attributes["db.name"] == "nostore"
    )
    assert (got.trace_id, got.parent_id, got.kind) == (TRACE_ID, CALLER_SPAN, "client")
    assert got.attributes["db.system"] == "state" and got.attributes["db.name"] == "statestore"
    assert got.attributes["db.statement"] == f"{DAPR}GetState"
    assert (got.attributes["dapr.protocol"], got.attributes["dapr.api"]) == ("grpc", f"{DAPR}GetState")
    assert got.attributes["dapr-team"] == "payments"
    assert got.status == ("UNSET", "")
    assert by_name(spans, "traced", "state/get").parent_id == got.span_id
    assert refused.status == ("ERROR", "state store nostore is not found")

    published = by_name(spans, "traced", f"{DAPR}PublishEvent")
    assert published.attributes["messaging.destination.name"] == "orders"
    assert published.trace_id == TRACE_ID

    invoked = by_name(spans, "traced", "CallLocal/traced/orders", kind="client")
    assert invoked.attributes["net.peer.name"] == "traced"
    assert invoked.parent_id == CALLER_SPAN
    # The app is called under the call's own span, as over HTTP.
    assert echoed["traceparent"] == f"00-{TRACE_ID}-{invoked.span_id}-01"
