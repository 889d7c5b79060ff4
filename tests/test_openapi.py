"""The checked-in OpenAPI document is the app's, documents every route of the route table, and never
promises a 422."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from app.factory import create_app
from app.settings import Settings
from routers.api import ROUTES
from services import errors

SPEC_FILE = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(Settings.load())


@pytest.fixture(scope="module")
def spec(app: FastAPI) -> dict[str, Any]:
    # Through JSON, as `l8 openapi` writes it: status codes become strings, tuples lists.
    document: dict[str, Any] = json.loads(json.dumps(app.openapi()))
    return document


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def test_checked_in_document_is_up_to_date(spec: dict[str, Any]) -> None:
    checked_in = json.loads(SPEC_FILE.read_text(encoding="utf-8"))
    assert checked_in == spec, "openapi/openapi.json is out of date with the app: run `make openapi`"


def test_every_route_is_documented(spec: dict[str, Any]) -> None:
    routes = [(route.path, route.methods) for route in ROUTES]
    assert len(routes) >= 10
    missing = []
    for route_path, methods in routes:
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route_path)  # {key:path} is documented as {key}
        for method in methods:
            if method.lower() not in spec["paths"].get(path, {}):
                missing.append(f"{method} {path}")
    assert not missing, f"routes missing from the OpenAPI document: {missing}"


def test_the_fallback_is_not_documented(spec: dict[str, Any]) -> None:
    assert "/{path}" not in spec["paths"]


def test_no_operation_documents_a_422(spec: dict[str, Any]) -> None:
    with_422 = [
        f"{method} {path}" for path, method, op in operations(spec) if "422" in op.get("responses", {})
    ]
    assert not with_422
    schemas = spec.get("components", {}).get("schemas", {})
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas


def test_every_error_code_is_documented(spec: dict[str, Any]) -> None:
    """Every code the catalogue can answer with appears in some operation's error descriptions."""
    catalogue = Path(errors.__file__).read_text()
    codes = set(re.findall(r'"(ERR_[A-Z_]+)"', catalogue)) - {
        "ERR_DIRECT_INVOKE",  # the fallback route is not in the spec
        "ERR_WASM_MIDDLEWARE",  # an httpPipeline guest's failure answers any route, as rate limits do
        "ERR_STATE_BULK_DELETE",  # gRPC's DeleteBulkState only: the HTTP API has no bulk delete
    }
    # gRPC-only streams: the binary-file RPCs (SetBinaryFileAlpha1...; l8 serves no binary store
    # routes) and the actor host stream (SubscribeActorEventsAlpha1) answer nothing over HTTP.
    codes = {code for code in codes if not code.startswith(("ERR_BINARY_STORE_", "ERR_ACTOR_STREAM_"))}
    described = " ".join(
        response.get("description", "")
        for _, _, operation in operations(spec)
        for response in operation.get("responses", {}).values()
    )
    undocumented = sorted(code for code in codes if not re.search(rf"\b{code}\b", described))
    assert not undocumented, f"error codes missing from the OpenAPI descriptions: {undocumented}"


# Dapr's one error answer without an errorCode (dapr-http-api.md section 8.3).
MESSAGE_ONLY = ("get", "/v1.0/configuration/{storeName}/{subscriptionId}/unsubscribe", "500")


def test_errors_are_documented_with_dapr_error_body(spec: dict[str, Any]) -> None:
    for path, method, operation in operations(spec):
        for status, response in operation.get("responses", {}).items():
            if status.startswith(("4", "5")):
                schema = response["content"]["application/json"]["schema"]
                if (method, path.replace("v1.0-alpha1", "v1.0"), status) == MESSAGE_ONLY:
                    assert schema == {"$ref": "#/components/schemas/MessageBody"}
                    continue
                if path.startswith("/actuator/health/") and status == "503":  # Layotto's body, DOWN
                    assert schema == {"$ref": "#/components/schemas/HealthResponse"}
                    continue
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, f"{method} {path} {status}"
    error_body = spec["components"]["schemas"]["ErrorBody"]
    assert set(error_body["properties"]) == {"errorCode", "message", "details"}
    assert set(error_body["required"]) == {"errorCode", "message"}


def test_every_reference_resolves(spec: dict[str, Any]) -> None:
    """A dangling ``$ref`` breaks ReDoc's whole page ("Invalid reference token")."""
    refs = set(re.findall(r'"\$ref": "([^"]+)"', json.dumps(spec)))
    defined = spec["components"]["schemas"]
    dangling = sorted(ref for ref in refs if ref.removeprefix("#/components/schemas/") not in defined)
    assert not dangling, f"references to schemas the document does not define: {dangling}"
