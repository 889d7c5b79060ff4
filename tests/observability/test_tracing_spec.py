"""``spec.tracing`` read as daprd reads it, the W3C baggage check, and Dapr's span names and
attributes for an API call."""

from __future__ import annotations

import pytest

from observability.tracing import (
    OtelExporterSpec,
    TracingSpec,
    TracingSpecError,
    parse_tracing_spec,
    server_span_attributes,
    server_span_name,
    valid_baggage,
)
from observability.tracing.spec import DEFAULT_SAMPLING_RATE


def test_no_tracing_section_is_off() -> None:
    assert parse_tracing_spec({}) == TracingSpec()
    assert not TracingSpec().enabled


@pytest.mark.parametrize(
    ("rate", "expected"), [("1", 1.0), ("0", 0.0), ("0.25", 0.25), ("", DEFAULT_SAMPLING_RATE)]
)
def test_sampling_rate(rate: str, expected: float) -> None:
    spec = parse_tracing_spec({"tracing": {"samplingRate": rate}})
    assert spec.sampling_rate == expected
    assert spec.enabled is (expected > 0)


def test_an_absent_rate_is_daprds_default() -> None:
    assert parse_tracing_spec({"tracing": {"stdout": True}}).sampling_rate == DEFAULT_SAMPLING_RATE


def test_exporters() -> None:
    spec = parse_tracing_spec(
        {
            "tracing": {
                "samplingRate": "1",
                "stdout": "true",
                "otel": {"endpointAddress": "collector:4317", "isSecure": "false", "protocol": "grpc"},
                "zipkin": {"endpointAddress": "http://zipkin:9411/api/v2/spans"},
            }
        }
    )
    assert spec.otel == OtelExporterSpec("collector:4317", False, "grpc")
    assert spec.zipkin == "http://zipkin:9411/api/v2/spans"
    assert spec.stdout


@pytest.mark.parametrize(
    ("otel", "url"),
    [
        (OtelExporterSpec("localhost:4318"), "http://localhost:4318/v1/traces"),
        (OtelExporterSpec("collector:4318", secure=True), "https://collector:4318/v1/traces"),
        (OtelExporterSpec("http://c:4318/v1/traces"), "http://c:4318/v1/traces"),
    ],
)
def test_the_http_endpoint_posts_to_v1_traces(otel: OtelExporterSpec, url: str) -> None:
    assert otel.url == url


@pytest.mark.parametrize(
    ("tracing", "field"),
    [
        ({"samplingRate": "often"}, "spec.tracing.samplingRate"),
        ({"samplingRate": "2"}, "spec.tracing.samplingRate"),
        ({"otel": {"endpointAddress": "c:4317", "protocol": "thrift"}}, "spec.tracing.otel.protocol"),
        ({"otel": {"endpointAddress": "c:4317", "isSecure": "maybe"}}, "spec.tracing.otel.isSecure"),
        ({"zipkin": {"endpointAddress": "zipkin:9411"}}, "spec.tracing.zipkin.endpointAddress"),
        ({"stdout": "loud"}, "spec.tracing.stdout"),
        ("on", "spec.tracing"),
    ],
)
def test_a_bad_field_is_named(tracing: object, field: str) -> None:
    with pytest.raises(TracingSpecError, match=field.replace(".", r"\.")):
        parse_tracing_spec({"tracing": tracing})


@pytest.mark.parametrize(
    "header",
    ["", "a=1", "a=1,b=2", " a = 1 , b=2;prop", "k=v;p=1;q", "userId=alice%20smith", "x=" + "y" * 100],
)
def test_valid_baggage(header: str) -> None:
    assert valid_baggage(header)


@pytest.mark.parametrize(
    "header",
    [
        "a",
        "=1",
        "a=1,",
        "a b=1",
        'a="quoted"',
        "a=1;=x",
        "a=%zz",
        "a=%ff",
        ",".join(["k=v"] * 181),
        "a=" + "v" * 8200,
    ],
)
def test_invalid_baggage(header: str) -> None:
    assert not valid_baggage(header)


def test_span_names_follow_daprd() -> None:
    assert server_span_name("/v1.0/state/store/k", forwarded=False) == "/v1.0/state/store/k"
    # daprd names both the caller's API span and the callee's span CallLocal/{app}/{method}.
    assert server_span_name("/v1.0/invoke/back/method/a/b", forwarded=True) == "CallLocal/back/a/b"
    assert server_span_name("/v1.0/invoke/back/method/a/b", forwarded=False) == "CallLocal/back/a/b"
    assert server_span_name("/v1.0/invoke/back", forwarded=False) == "/v1.0/invoke/back"


def test_attributes_by_building_block_as_daprd_sets_them() -> None:
    state = server_span_attributes("GET", "/v1.0/state/store/k")
    assert state == {
        "db.system": "state",
        "db.connection_string": "state",
        "db.statement": "GET /v1.0/state/store/k",
        "db.name": "store",
        "dapr.protocol": "http",
        "dapr.api": "GET /v1.0/state/store/k",
    }
    secrets = server_span_attributes("GET", "/v1.0/secrets/vault/k")
    assert (secrets["db.system"], secrets["db.name"], secrets["db.connection_string"]) == (
        "secrets",
        "vault",
        "secrets",
    )
    binding = server_span_attributes("POST", "/v1.0/bindings/queue")
    assert (binding["db.system"], binding["db.name"]) == ("bindings", "queue")
    invoke = server_span_attributes("POST", "/v1.0/invoke/back/method/orders/1")
    assert invoke["rpc.service"] == "ServiceInvocation" and invoke["net.peer.name"] == "back"
    assert "dapr.invoke_method" not in invoke
    callee = server_span_attributes("POST", "/v1.0/invoke/back/method/orders/1", forwarded=True)
    assert callee["rpc.service"] == "ServiceInvocation" and callee["dapr.invoke_method"] == "orders/1"
    assert "net.peer.name" not in callee
    publish = server_span_attributes("POST", "/v1.0/publish/pubsub/orders")
    assert (publish["messaging.system"], publish["messaging.destination.name"]) == ("pubsub", "orders")
    assert "messaging.destination_kind" not in publish and "messaging.destination" not in publish
    bulk = server_span_attributes("POST", "/v1.0-alpha1/publish/bulk/pubsub/orders")
    assert bulk["messaging.destination.name"] == "orders"
    assert server_span_attributes("GET", "/v1.0/metadata") == {
        "dapr.protocol": "http",
        "dapr.api": "GET /v1.0/metadata",
    }


def test_dapr_prefixed_request_headers_become_attributes_but_never_the_api_token() -> None:
    headers = [(b"dapr-app-id", b"back"), (b"dapr-api-token", b"secret"), (b"x-other", b"1")]
    attributes = server_span_attributes("GET", "/v1.0/metadata", headers=headers)
    assert attributes["dapr-app-id"] == "back"
    assert "dapr-api-token" not in attributes and "x-other" not in attributes


@pytest.mark.parametrize(
    ("status", "description"),
    [
        (200, None),
        (204, None),
        (302, None),
        (400, "Code(400): Bad Request"),
        (404, "Code(404): Not Found"),
        (500, "Code(500): Internal Server Error"),
        (599, "Code(599): Unknown"),
        (0, "Code(0): Unknown"),
    ],
)
def test_span_status_from_the_http_status_as_daprd(status: int, description: str | None) -> None:
    from opentelemetry.trace import StatusCode

    from observability.tracing.tracer import http_span_status

    result = http_span_status(status)
    if description is None:
        assert result is None  # daprd leaves the status unset below 400
    else:
        assert result is not None
        assert (result.status_code, result.description) == (StatusCode.ERROR, description)


def test_the_first_configuration_with_tracing_applies_and_a_bad_one_names_its_file() -> None:
    from app.tracing import tracing_spec
    from mesh.errors import SettingsError

    configurations = [({"metric": {}}, "a.yaml"), ({"tracing": {"samplingRate": "1"}}, "b.yaml")]
    assert tracing_spec(configurations).sampling_rate == 1.0
    assert not tracing_spec([]).enabled
    with pytest.raises(SettingsError, match=r"^c\.yaml: spec\.tracing\.samplingRate"):
        tracing_spec([({"tracing": {"samplingRate": "x"}}, "c.yaml")])
