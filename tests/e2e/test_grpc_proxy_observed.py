"""What daprd records of a proxied gRPC call, through two real ``l8 run`` sidecars tracing into a
real OTLP receiver and scraped on their metrics ports (routers/grpc/proxy_observer.py): the
caller's sidecar's CLIENT span and the target's SERVER span, named after the full method, one
trace from the caller's ``traceparent`` to the app; ``dapr_grpc_io_server_*`` on the caller's
sidecar, ``dapr_grpc_io_client_*`` on the target's; the API log line on the caller's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.wrappers_pb2 import StringValue

from tests.e2e.process import L8Launcher, L8Process
from tests.e2e.test_actuator import json_lines
from tests.e2e.test_grpc_proxy import SERVICE, Greeter, _codec
from tests.e2e.test_metrics import scrape, total
from tests.e2e.test_tracing import CALLER_SPAN, TRACE_ID, TRACEPARENT, by_name, otel, tracing_resources
from tests.otlp_receiver import OtlpHttpReceiver
from tests.servers import LOOPBACK, free_port

pytestmark = pytest.mark.e2e

SAY = f"/{SERVICE}/Say"
COUNT = f"/{SERVICE}/Count"


@pytest.fixture
def receiver() -> Iterator[OtlpHttpReceiver]:
    with OtlpHttpReceiver() as found:
        yield found


class Observed:
    def __init__(self, front: L8Process, back: L8Process, app: Greeter, ports: tuple[int, int]) -> None:
        self.front, self.back, self.app = front, back, app
        self.front_metrics, self.back_metrics = ports


@pytest.fixture
async def observed(l8: L8Launcher, receiver: OtlpHttpReceiver, tmp_path: Path) -> AsyncIterator[Observed]:
    app = Greeter()
    port = await app.start()
    front_metrics, back_metrics = free_port(), free_port()
    back = l8.create(
        app_id="greeter",
        resources=[tracing_resources(tmp_path / "back", otel(receiver.endpoint))],
        args=["--app-port", str(port), "--app-protocol", "grpc", "--metrics-port", str(back_metrics)],
    )
    await asyncio.to_thread(back.start)
    config = tmp_path / "front.yaml"
    config.write_text(f"name_resolution:\n  type: static\n  apps:\n    greeter: {LOOPBACK}:{back.port}\n")
    front = l8.create(
        app_id="caller",
        resources=[tracing_resources(tmp_path / "front", otel(receiver.endpoint))],
        args=[
            "--config",
            str(config),
            "--metrics-port",
            str(front_metrics),
            "--enable-api-logging",
            "--log-as-json",
        ],
    )
    await asyncio.to_thread(front.start)
    try:
        yield Observed(front, back, app, (front_metrics, back_metrics))
    finally:
        await app.stop()


async def test_a_proxied_call_is_one_trace_through_both_sidecars_to_the_app(
    observed: Observed, receiver: OtlpHttpReceiver
) -> None:
    caller = (
        ("dapr-app-id", "greeter"),
        ("traceparent", TRACEPARENT),
        ("dapr-team", "payments"),
        ("dapr-api-token", "never-an-attribute"),
    )
    async with grpc.aio.insecure_channel(observed.front.grpc_address) as channel:
        say = channel.unary_unary(SAY, **_codec())
        assert (await say(StringValue(value="ann"), metadata=caller, timeout=10)).value == "hello ann"
        with pytest.raises(grpc.aio.AioRpcError):
            await say(StringValue(value="fail"), metadata=caller, timeout=10)
        count = channel.unary_stream(COUNT, **_codec())
        streamed = (*caller, ("dapr-stream", "true"))
        assert [m.value async for m in count(StringValue(value="2"), metadata=streamed)] == ["0", "1"]

    spans = receiver.wait_for(
        lambda spans: sum(s.name == SAY for s in spans) == 4 and sum(s.name == COUNT for s in spans) == 2
    )
    # (the back sidecar's one other span: the front's first look-up of its gRPC port, its metadata)
    assert {s.trace_id for s in spans if s.name in (SAY, COUNT)} == {TRACE_ID}
    says = sorted((s for s in spans if s.name == SAY), key=lambda s: s.status[0])  # ERROR before UNSET
    failed_front, failed_back, front, back = sorted(says[:2], key=lambda s: s.kind) + sorted(
        says[2:], key=lambda s: s.kind
    )
    assert (front.service, front.kind, front.parent_id) == ("caller", "client", CALLER_SPAN)
    assert (back.service, back.kind, back.parent_id) == ("greeter", "server", front.span_id)
    assert front.attributes["dapr-team"] == "payments"
    assert front.attributes["dapr-app-id"] == "greeter"
    assert "dapr-api-token" not in front.attributes and "dapr-api-token" not in back.attributes
    assert back.attributes["dapr-caller-app-id"] == "caller"
    assert front.status == back.status == ("UNSET", "")
    assert failed_front.status == failed_back.status == ("ERROR", "no greeting")
    assert (failed_front.kind, failed_back.kind) == ("client", "server")
    # As daprd: the target's sidecar hands its app the trace headers the call came with, which
    # the caller's sidecar set to its own span (the caller's traceparent replaced).
    parents = [seen["traceparent"].split("-")[1:3] for seen in observed.app.metadata]
    assert parents[0] == [TRACE_ID, front.span_id]
    assert parents[1] == [TRACE_ID, failed_front.span_id]
    streamed_front = by_name(spans, "caller", COUNT, "client")
    assert by_name(spans, "greeter", COUNT, "server").parent_id == streamed_front.span_id

    front_samples = scrape(observed.front_metrics)
    server = "dapr_grpc_io_server_completed_rpcs"
    assert total(front_samples, server, app_id="caller", grpc_server_method=SAY, grpc_server_status="OK") == 1
    assert total(front_samples, server, grpc_server_method=SAY, grpc_server_status="FAILED_PRECONDITION") == 1
    assert total(front_samples, server, grpc_server_method=COUNT, grpc_server_status="OK") == 1
    assert total(front_samples, "dapr_grpc_io_server_server_latency_count", grpc_server_method=SAY) == 2
    back_samples = scrape(observed.back_metrics)
    client = "dapr_grpc_io_client_completed_rpcs"
    assert total(back_samples, client, app_id="greeter", grpc_client_method=SAY, grpc_client_status="OK") == 1
    assert total(back_samples, client, grpc_client_method=SAY, grpc_client_status="FAILED_PRECONDITION") == 1
    assert total(back_samples, "dapr_grpc_io_client_roundtrip_latency_count", grpc_client_method=COUNT) == 1
    assert (
        total(back_samples, server, grpc_server_method=SAY) == 0
    )  # daprd's internal server's, not its API's

    lines = json_lines(observed.front)
    calls = [(e["method"], e["status"]) for e in lines if e["event"] == "api call" and e["method"][:1] == "/"]
    assert calls == [(SAY, "OK"), (SAY, "FAILED_PRECONDITION"), (COUNT, "OK")]


async def test_an_unknown_target_is_recorded_with_its_error(
    observed: Observed, receiver: OtlpHttpReceiver
) -> None:
    async with grpc.aio.insecure_channel(observed.front.grpc_address) as channel:
        say = channel.unary_unary(SAY, **_codec())
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await say(StringValue(value="x"), metadata=(("dapr-app-id", "nobody"),), timeout=10)
    spans = receiver.wait_for(lambda spans: any(s.name == SAY for s in spans))
    span = by_name(spans, "caller", SAY, "client")
    assert span.status == ("ERROR", refused.value.details())
    samples = scrape(observed.front_metrics)
    status = refused.value.code().name
    assert (
        total(
            samples, "dapr_grpc_io_server_completed_rpcs", grpc_server_method=SAY, grpc_server_status=status
        )
        == 1
    )
