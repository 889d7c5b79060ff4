"""Property-based tests of l8's HTTP API against its own OpenAPI document (schemathesis 4).

One l8 process for the session serves the document at /openapi.json, two state stores
(``statestore`` on SQLite, ``memstore`` in memory), a lock store, a sequencer, a configuration
store, a secret store (``secretstore``, a local file), a file store and an output binding
(``files``, local storage); generated requests name those or any other name. Every answer must
have a documented status code and content type and match the documented schema, and must not be a
server error, except the 500s that Dapr itself answers for some inputs (see
:data:`DAPR_MANDATED_500`). POST /v1.0/shutdown is left out: it stops the sidecar.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.process import L8Launcher, L8Process, write_component

pytestmark = pytest.mark.e2e

STORES = (
    "statestore",
    "memstore",
    "lockstore",
    "sequencer",
    "configstore",
    "secretstore",
    "filestore",
    "files",
)
STORE_PARAMETERS = ("storeName", "secretStoreName", "name")

# 500s that Dapr answers for a client's input, so they are correct answers, not server bugs
# (../shared/reference/dapr-http-api.md): a query the store cannot parse is 500 ERR_STATE_QUERY
# (section 3.8); an unrecognized concurrency/consistency option is 500 ERR_STATE_SAVE (3.3) or
# ERR_STATE_DELETE (3.6); any failing transaction operation, ETag mismatch included, is
# 500 ERR_STATE_TRANSACTION (3.7); a store without transactions or query support answers
# 500 ERR_STATE_STORE_NOT_SUPPORTED (3.7, 3.8); GET /v1.0/healthz?appid=X with X not this app's
# id, even empty, is 500 ERR_HEALTH_APPID_NOT_MATCH (section 11; daprd tests qs.Has("appid")).
# A lock resource id with "||" fails in the key builder, which Dapr reports as 500 ERR_TRY_LOCK /
# ERR_UNLOCK (l8's renewal answers the same way, ERR_RENEW_LOCK); subscribing to configuration
# without an app is 500 ERR_APP_CHANNEL_NIL (section 8.2), and unsubscribing an unknown id is a 500
# whose body is {"message"} only (8.3). A secret the store does not hold is 500 ERR_SECRET_GET
# (section 7). Every output binding failure, a missing operation or an unknown binding included, is
# 500 ERR_INVOKE_OUTPUT_BINDING (6.1). Scheduling a job fails with 500 DAPR_SCHEDULER_SCHEDULE_JOB
# when the scheduler's store fails (13.2: the status is the scheduler's gRPC code; a name taken is
# its AlreadyExists, 409), and getting a missing job is 500 DAPR_SCHEDULER_GET_JOB (daprd passes the
# scheduler's NotFound on as an Internal error, as its tests of jobs expect). Actor state with no store
# marked actorStateStore is 500 ERR_ACTOR_RUNTIME_NOT_FOUND; a timer's or reminder's time value that
# does not parse is 500 ERR_ACTOR_TIMER_CREATE / ERR_ACTOR_REMINDER_CREATE, and a failing actor state
# operation (a bad ttlInSeconds, an ETag mismatch) 500 ERR_ACTOR_STATE_TRANSACTION_SAVE (12.1).
# See the table in section 15.
DAPR_MANDATED_500 = frozenset(
    {
        "ERR_STATE_QUERY",
        "ERR_STATE_SAVE",
        "ERR_STATE_DELETE",
        "ERR_STATE_TRANSACTION",
        "ERR_STATE_STORE_NOT_SUPPORTED",
        "ERR_HEALTH_APPID_NOT_MATCH",
        "ERR_TRY_LOCK",
        "ERR_UNLOCK",
        "ERR_RENEW_LOCK",
        "ERR_APP_CHANNEL_NIL",
        "ERR_SECRET_GET",
        "ERR_INVOKE_OUTPUT_BINDING",
        "DAPR_SCHEDULER_SCHEDULE_JOB",
        "DAPR_SCHEDULER_GET_JOB",
        "ERR_ACTOR_RUNTIME_NOT_FOUND",
        "ERR_ACTOR_TIMER_CREATE",
        "ERR_ACTOR_REMINDER_CREATE",
        "ERR_ACTOR_STATE_TRANSACTION_SAVE",
    }
)


@pytest.fixture(scope="session")
def l8_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[L8Process]:
    workdir = tmp_path_factory.mktemp("l8-schemathesis")
    resources = workdir / "resources"
    write_component(resources, "statestore", "state.sqlite", {"connectionString": str(workdir / "state.db")})
    write_component(resources, "memstore", "state.in-memory")
    write_component(resources, "lockstore", "lock.in-memory")
    write_component(resources, "sequencer", "sequencer.sqlite", {"connectionString": str(workdir / "ids.db")})
    write_component(resources, "configstore", "configuration.in-memory")
    secrets = workdir / "secrets.json"
    secrets.write_text(json.dumps({"db-password": "p", "api": {"key": "k"}}))
    write_component(resources, "secretstore", "secretstores.local.file", {"secretsFile": str(secrets)})
    write_component(resources, "filestore", "file.local", {"rootPath": str(workdir / "files")})
    write_component(resources, "files", "bindings.localstorage", {"rootPath": str(workdir / "binding-files")})
    launcher = L8Launcher(workdir)
    try:
        yield launcher(app_id="fuzz", resources=[resources])
    finally:
        launcher.close()


@pytest.fixture(scope="session")
def api_schema(l8_api: L8Process) -> Any:
    loaded = schemathesis.openapi.from_url(f"{l8_api.url}/openapi.json")

    @loaded.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
        # Mostly the stores that exist, so the handlers behind the store lookup are reached.
        if not isinstance(path_parameters, dict):
            return st.just(path_parameters)
        parameter = next((p for p in STORE_PARAMETERS if p in path_parameters), None)
        if parameter is None:
            return st.just(path_parameters)
        names = st.sampled_from([*STORES, path_parameters[parameter]])
        return names.map(lambda name: {**path_parameters, parameter: name})

    return loaded


@pytest.fixture(autouse=True)
def _node_id_for_lazy_schemas(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32's lazy schemas read Node._nodeid, which pytest 9 no longer has.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


# Service invocation is left out too: its target may be a URL (an app id like http%3A%2F%2Fhost),
# so generated requests would send traffic to hosts the fuzzer invents. tests/e2e/test_invoke.py
# covers it against a real app.
schema = (
    schemathesis.pytest.from_fixture("api_schema")
    .exclude(method="POST", path="/v1.0/shutdown")
    .exclude(path_regex="^/v1.0/invoke/")
)


def not_an_unmandated_server_error(ctx: Any, response: Any, case: Any) -> None:
    """No 5xx, except a 500 whose Dapr error code is one Dapr answers for an input."""
    if response.status_code < 500:
        return
    code = None
    if response.headers.get("content-type", [""])[0].startswith("application/json"):
        body = response.json()
        code = body.get("errorCode") if isinstance(body, dict) else None
    else:
        body = None
    if response.status_code == 500 and code in DAPR_MANDATED_500:
        return
    unsubscribe_failure = "failed to unsubscribe to configuration request"
    if (
        isinstance(body, dict)
        and set(body) == {"message"}
        and str(body["message"]).startswith(unsubscribe_failure)
    ):
        return  # Dapr's one error body without an errorCode, always a 500
    raise AssertionError(f"server error {response.status_code} {code or ''}: {response.text[:500]}")


CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    not_an_unmandated_server_error,
]


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_matches_its_document(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


def test_document_lists_the_state_api(api_schema: Any) -> None:
    paths = api_schema.raw_schema["paths"]
    assert {"/v1.0/state/{storeName}", "/v1.0/state/{storeName}/{key}", "/v1.0/healthz"} <= set(paths)


def test_custom_check_allows_only_the_listed_500s() -> None:
    """The allow-list is not a blanket pass: a 500 with any other code, or no JSON, fails."""
    request = httpx.Request("GET", "http://l8.invalid/v1.0/state/s/k")

    def response(status: int, body: dict[str, str] | None) -> Response:
        content = b"oops" if body is None else json.dumps(body).encode()
        media = "text/plain" if body is None else "application/json"
        answer = httpx.Response(status, content=content, headers={"content-type": media}, request=request)
        answer.elapsed = timedelta(0)  # as the transport sets it on a real response
        return Response.from_any(answer)

    not_an_unmandated_server_error(None, response(500, {"errorCode": "ERR_STATE_QUERY", "message": ""}), None)
    not_an_unmandated_server_error(None, response(400, {"errorCode": "ERR_MALFORMED_REQUEST"}), None)
    for status, body in [(500, {"errorCode": "ERR_INTERNAL"}), (500, {"errorCode": "ERROR"}), (500, None)]:
        with pytest.raises(AssertionError, match="server error 500"):
            not_an_unmandated_server_error(None, response(status, body), None)
    with pytest.raises(AssertionError, match="server error 503"):
        not_an_unmandated_server_error(None, response(503, {"errorCode": "ERR_STATE_QUERY"}), None)
