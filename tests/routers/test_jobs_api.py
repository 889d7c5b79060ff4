"""Dapr's jobs API through the app (services/jobs.py): bodies read as protojson, daprd's error
reasons in its order, GET as daprd renders the job, DELETE, the v1.0-alpha1 aliases, and the
scheduler's store in metadata. The sidecar has no app, so no job fires here (tests/e2e does that)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.routers.conftest import Sidecar, StartSidecar, assert_error, detail

VALUE = "type.googleapis.com/google.protobuf.Value"


@pytest.fixture
async def sidecar(start_sidecar: StartSidecar) -> Sidecar:
    return await start_sidecar()


async def post(sidecar: Sidecar, name: str, body: Any, version: str = "v1.0") -> Any:
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    return await sidecar.request("POST", f"/{version}/jobs/{name}", **kwargs)


@pytest.mark.parametrize("version", ["v1.0", "v1.0-alpha1"])
async def test_schedule_get_delete(sidecar: Sidecar, version: str) -> None:
    body = {"schedule": "@every 1h", "repeats": 3, "dueTime": "1h", "ttl": "2h", "data": {"a": [1, "x"]}}
    response = await post(sidecar, "backup", body, version)
    assert response.status_code == 204 and response.content == b""
    response = await sidecar.request("GET", f"/{version}/jobs/backup")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == {
        "name": "backup",
        "schedule": "@every 1h",
        "repeats": 3,
        "dueTime": "1h",
        "ttl": "2h",
        "data": {"@type": VALUE, "value": {"a": [1, "x"]}},
        "failurePolicy": {"constant": {"interval": "1s", "maxRetries": 3}},
    }
    response = await sidecar.request("DELETE", f"/{version}/jobs/backup")
    assert response.status_code == 204
    response = await sidecar.request("DELETE", f"/{version}/jobs/backup")
    assert response.status_code == 204  # deleting a missing job succeeds


async def test_get_of_a_missing_job_is_daprds_500(sidecar: Sidecar) -> None:
    response = await sidecar.request("GET", "/v1.0/jobs/nothing")
    body = assert_error(response, 500, "DAPR_SCHEDULER_GET_JOB", details=["ErrorInfo"])
    assert (
        body["message"]
        == "failed to get job due to: rpc error: code = NotFound desc = job not found: nothing"
    )
    assert detail(body, "ErrorInfo")["reason"] == "DAPR_SCHEDULER_GET_JOB"


@pytest.mark.parametrize(
    ("data", "rendered"),
    [("someData", "someData"), (123, 123), (None, None), ([1, {"b": True}], [1, {"b": True}])],
)
async def test_data_of_any_json_is_rendered_as_an_any(sidecar: Sidecar, data: Any, rendered: Any) -> None:
    assert (await post(sidecar, "d", {"dueTime": "1h", "data": data})).status_code == 204
    found = (await sidecar.request("GET", "/v1.0/jobs/d")).json()
    assert found["data"] == {"@type": VALUE, "value": rendered}


async def test_snake_case_due_time_policies_and_overwrite(sidecar: Sidecar) -> None:
    assert (
        await post(sidecar, "j", {"due_time": "2030-01-01T00:00:00Z", "failure_policy": {"drop": {}}})
    ).status_code == 204
    found = (await sidecar.request("GET", "/v1.0/jobs/j")).json()
    assert found == {"name": "j", "dueTime": "2030-01-01T00:00:00Z", "failurePolicy": {"drop": {}}}
    again = await post(sidecar, "j", {"schedule": "0 30 * * * *"})
    body = assert_error(again, 409, "DAPR_SCHEDULER_SCHEDULE_JOB", details=["ErrorInfo"])
    assert body["message"] == (
        "failed to schedule job due to: rpc error: code = AlreadyExists desc = job already exists: j"
    )
    policy = {"constant": {"interval": "1.5s"}}
    response = await post(
        sidecar, "j", {"schedule": "0 30 * * * *", "overwrite": True, "failurePolicy": policy}
    )
    assert response.status_code == 204
    found = (await sidecar.request("GET", "/v1.0/jobs/j")).json()
    assert found == {
        "name": "j",
        "schedule": "0 30 * * * *",
        "failurePolicy": {"constant": {"interval": "1.500s"}},
    }


@pytest.mark.parametrize(
    ("name", "body", "status", "code"),
    [
        ("j", {"name": "j", "schedule": "@daily"}, 400, "DAPR_SCHEDULER_JOB_NAME"),
        ("a|b", {"schedule": "@daily"}, 400, "DAPR_SCHEDULER_JOB_NAME_EMPTY"),
        ("%20", {"schedule": "@daily"}, 400, "DAPR_SCHEDULER_JOB_NAME_EMPTY"),
        ("j", {}, 400, "DAPR_SCHEDULER_SCHEDULE_EMPTY"),
        ("j", {"repeats": 2, "data": 1}, 400, "DAPR_SCHEDULER_SCHEDULE_EMPTY"),
        ("j", b"", 400, "DAPR_SCHEDULER_SCHEDULE_EMPTY"),
        ("j", b"{not json", 400, "ERR_MALFORMED_REQUEST"),
        ("j", b"[1]", 400, "ERR_MALFORMED_REQUEST"),
        ("j", {"schedule": 5}, 400, "ERR_MALFORMED_REQUEST"),
        ("j", {"schedule": "every day"}, 400, "ERR_MALFORMED_REQUEST"),
        ("j", {"schedule": "* * *"}, 400, "ERR_MALFORMED_REQUEST"),
        ("j", {"schedule": "@every -1s"}, 400, "ERR_MALFORMED_REQUEST"),
        ("j", {"dueTime": "tomorrow"}, 400, "ERR_MALFORMED_REQUEST"),
        ("j", {"dueTime": "1s", "ttl": "forever"}, 400, "ERR_MALFORMED_REQUEST"),
        ("j", {"dueTime": "1s", "repeats": -1}, 400, "ERR_MALFORMED_REQUEST"),
        ("j", {"dueTime": "1s", "repeats": "x"}, 400, "ERR_MALFORMED_REQUEST"),
        ("j", {"dueTime": "1s", "overwrite": "yes"}, 400, "ERR_MALFORMED_REQUEST"),
        (
            "j",
            {"dueTime": "1s", "failurePolicy": {"constant": {"interval": "soon"}}},
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "j",
            {"dueTime": "1s", "failurePolicy": {"constant": {"maxRetries": -1}}},
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        ("j", {"dueTime": "1s", "failurePolicy": "drop"}, 400, "ERR_MALFORMED_REQUEST"),
    ],
)
async def test_bad_requests(sidecar: Sidecar, name: str, body: Any, status: int, code: str) -> None:
    response = await post(sidecar, name, body)
    assert_error(response, status, code, details=["ErrorInfo"] if code.startswith("DAPR_") else None)
    assert (await sidecar.request("GET", "/v1.0/jobs/j")).status_code == 500  # nothing was stored


async def test_metadata_names_the_schedulers_store(sidecar: Sidecar) -> None:
    found = (await sidecar.metadata())["scheduler"]
    assert len(found["connected_addresses"]) == 1
    assert found["connected_addresses"][0].startswith("sqlite:") and found["connected_addresses"][0].endswith(
        "scheduler.db"
    )


async def test_error_info_carries_the_app_id_and_daprs_default_namespace(sidecar: Sidecar) -> None:
    body = assert_error(
        await post(sidecar, "j", {}), 400, "DAPR_SCHEDULER_SCHEDULE_EMPTY", details=["ErrorInfo"]
    )
    assert body["message"] == "Schedule is empty"
    info = detail(body, "ErrorInfo")
    assert info["domain"] == "dapr.io" and info["metadata"] == {
        "appID": sidecar.app_id,
        "namespace": "default",
    }
