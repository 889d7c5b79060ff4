"""The jobs API over both transports, one scenario written once against :class:`Jobs` and run with
``http`` (the route table over ASGI) and ``grpc`` (Dapr's stub on the sidecar's gRPC port): the same
job reads back the same, and a refused request has the same reason and message (an HTTP status, or
daprd's gRPC code of it). A job scheduled over one transport reads back the same over the other."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import dapr_pb2_grpc, jobs_pb2
from google.protobuf import any_pb2, json_format, struct_pb2

from tests.routers.conftest import Sidecar, StartSidecar
from tests.routers.test_grpc_parity import Refused, _grpc_refusal, _http_refusal

# daprd's gRPC code of each HTTP status these scenarios meet.
CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    409: grpc.StatusCode.ALREADY_EXISTS,
    500: grpc.StatusCode.INTERNAL,
}


class Jobs:
    name: str

    async def schedule(self, name: str, job: dict[str, Any], overwrite: bool = False) -> None:
        """``job`` in the HTTP API's JSON names."""
        raise NotImplementedError

    async def get(self, name: str) -> dict[str, Any]:
        """The job as the HTTP API renders it (``data`` as the JSON value alone)."""
        raise NotImplementedError

    async def delete(self, name: str) -> None:
        raise NotImplementedError


class Http(Jobs):
    name = "http"

    def __init__(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.sidecar.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise _http_refusal(response)
        return response

    async def schedule(self, name: str, job: dict[str, Any], overwrite: bool = False) -> None:
        body = {**job, "overwrite": True} if overwrite else job
        await self._call("POST", f"/v1.0-alpha1/jobs/{name}", json=body)

    async def get(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = (await self._call("GET", f"/v1.0-alpha1/jobs/{name}")).json()
        if "data" in found:
            assert found["data"]["@type"] == "type.googleapis.com/google.protobuf.Value"
            found["data"] = found["data"]["value"]
        return found

    async def delete(self, name: str) -> None:
        await self._call("DELETE", f"/v1.0-alpha1/jobs/{name}")


class Grpc(Jobs):
    name = "grpc"

    def __init__(self, stub: dapr_pb2_grpc.DaprStub) -> None:
        self.stub = stub

    async def _call(self, rpc: str, request: Any) -> Any:
        try:
            return await getattr(self.stub, rpc)(request)
        except grpc.aio.AioRpcError as exc:
            refused = _grpc_refusal(exc)
            status = next(s for s, c in CODES.items() if c == exc.code())
            raise Refused(refused.reason, refused.message, status) from None

    async def schedule(self, name: str, job: dict[str, Any], overwrite: bool = False) -> None:
        message = jobs_pb2.Job(name=name)
        for field, json_name in (("schedule", "schedule"), ("due_time", "dueTime"), ("ttl", "ttl")):
            if json_name in job:
                setattr(message, field, job[json_name])
        if "repeats" in job:
            message.repeats = job["repeats"]
        if "data" in job:
            message.data.Pack(json_format.ParseDict(job["data"], struct_pb2.Value()))
        if "failurePolicy" in job:
            json_format.ParseDict(job["failurePolicy"], message.failure_policy)
        await self._call("ScheduleJobAlpha1", jobs_pb2.ScheduleJobRequest(job=message, overwrite=overwrite))

    async def get(self, name: str) -> dict[str, Any]:
        found = (await self._call("GetJobAlpha1", jobs_pb2.GetJobRequest(name=name))).job
        job: dict[str, Any] = json_format.MessageToDict(found)
        if found.HasField("data"):
            value = struct_pb2.Value()
            assert found.data.Unpack(value)
            job["data"] = json_format.MessageToDict(value)
        return job

    async def delete(self, name: str) -> None:
        await self._call("DeleteJobAlpha1", jobs_pb2.DeleteJobRequest(name=name))


@pytest.fixture
async def sidecar(start_sidecar: StartSidecar) -> Sidecar:
    return await start_sidecar()


@pytest.fixture(params=["http", "grpc"])
async def jobs(request: pytest.FixtureRequest, sidecar: Sidecar) -> AsyncIterator[Jobs]:
    if request.param == "http":
        yield Http(sidecar)
        return
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.app.state.grpc_api.port}") as channel:
        yield Grpc(dapr_pb2_grpc.DaprStub(channel))


async def refusal(call: Any) -> Refused:
    with pytest.raises(Refused) as refused:
        await call
    return refused.value


async def test_a_job_reads_back_as_scheduled(jobs: Jobs) -> None:
    job = {
        "schedule": "@every 1h",
        "repeats": 3,
        "ttl": "2h",
        "data": {"order": 7, "items": ["a", None, 1.5]},
        "failurePolicy": {"constant": {"interval": "1.500s", "maxRetries": 2}},
    }
    await jobs.schedule("nightly", job)
    assert await jobs.get("nightly") == {"name": "nightly", **job}

    await jobs.schedule("once", {"dueTime": "1h", "failurePolicy": {"drop": {}}})
    assert await jobs.get("once") == {"name": "once", "dueTime": "1h", "failurePolicy": {"drop": {}}}
    await jobs.schedule("plain", {"dueTime": "1h"})
    plain = await jobs.get("plain")  # the default policy filled in, as daprd renders it
    assert plain["failurePolicy"] == {"constant": {"interval": "1s", "maxRetries": 3}}

    await jobs.delete("once")
    missing = await refusal(jobs.get("once"))
    assert (missing.reason, missing.status) == ("DAPR_SCHEDULER_GET_JOB", 500)
    assert (
        missing.message == "failed to get job due to: rpc error: code = NotFound desc = job not found: once"
    )
    await jobs.delete("once")  # gone already: still fine


async def test_refusals_have_the_same_reason_message_and_status(jobs: Jobs) -> None:
    await jobs.schedule("taken", {"dueTime": "1h"})
    cases: list[tuple[str, dict[str, Any], str, int]] = [
        ("nothing", {}, "DAPR_SCHEDULER_SCHEDULE_EMPTY", 400),
        ("bad|name", {"dueTime": "1h"}, "DAPR_SCHEDULER_JOB_NAME_EMPTY", 400),
        ("bad", {"schedule": "every now and then"}, "ERR_MALFORMED_REQUEST", 400),
        ("taken", {"dueTime": "2h"}, "DAPR_SCHEDULER_SCHEDULE_JOB", 409),
    ]
    seen = []
    for name, job, reason, status in cases:
        refused = await refusal(jobs.schedule(name, job))
        assert (refused.reason, refused.status) == (reason, status), (name, refused)
        seen.append(refused.message)
    assert seen[:2] == ["Schedule is empty", "Name is empty"]
    assert (
        seen[3]
        == "failed to schedule job due to: rpc error: code = AlreadyExists desc = job already exists: taken"
    )
    await jobs.schedule("taken", {"dueTime": "2h"}, overwrite=True)
    assert (await jobs.get("taken"))["dueTime"] == "2h"


async def test_a_job_reads_back_the_same_over_the_other_transport(sidecar: Sidecar) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.app.state.grpc_api.port}") as channel:
        both = [Http(sidecar), Grpc(dapr_pb2_grpc.DaprStub(channel))]
        job = {"dueTime": "1h", "data": {"k": ["v", 2, True, None]}}
        for writer in both:
            await writer.schedule(f"from-{writer.name}", job)
        for writer in both:
            answers = [await reader.get(f"from-{writer.name}") for reader in both]
            assert answers[0] == answers[1]
            assert answers[0]["data"] == job["data"]


async def test_an_any_of_another_type_round_trips_over_grpc(sidecar: Sidecar) -> None:
    """A StringValue is kept as its protojson (read over HTTP as that object); an unknown type as
    its bytes in base64; both come back over gRPC as the same Any."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.app.state.grpc_api.port}") as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        policy = common_pb2.JobFailurePolicy(drop=common_pb2.JobFailurePolicyDrop())
        text = any_pb2.Any(type_url="type.googleapis.com/google.protobuf.StringValue", value=b"\n\x02hi")
        unknown = any_pb2.Any(type_url="type.googleapis.com/acme.Order", value=b"\x08\x07")
        for name, packed in (("text", text), ("unknown", unknown)):
            job = jobs_pb2.Job(name=name, due_time="1h", data=packed, failure_policy=policy)
            await stub.ScheduleJobAlpha1(jobs_pb2.ScheduleJobRequest(job=job))
            assert (await stub.GetJobAlpha1(jobs_pb2.GetJobRequest(name=name))).job.data == packed
        over_http = await Http(sidecar).get("text")
        assert over_http["data"] == {
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": "hi",
        }
        over_http = await Http(sidecar).get("unknown")
        assert over_http["data"] == {"@type": "type.googleapis.com/acme.Order", "value": "CAc="}


async def test_list_jobs_gives_every_job_of_the_app_as_get_reads_it(sidecar: Sidecar) -> None:
    """ListJobs (gRPC only: daprd has no HTTP route for it) answers the jobs of this app, by name,
    each as GetJob answers it, whichever transport scheduled it; both names of the RPC."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.app.state.grpc_api.port}") as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        assert list((await stub.ListJobs(jobs_pb2.ListJobsRequest())).jobs) == []
        http, over_grpc = Http(sidecar), Grpc(stub)
        await http.schedule("b-nightly", {"schedule": "@daily", "data": {"k": [1, None]}})
        await over_grpc.schedule("a/once", {"dueTime": "1h", "failurePolicy": {"drop": {}}})
        await over_grpc.schedule("c", {"schedule": "@every 1h", "repeats": 2, "ttl": "3h"})
        for rpc, request in (("ListJobs", jobs_pb2.ListJobsRequest()),
                             ("ListJobsAlpha1", jobs_pb2.ListJobsRequestAlpha1())):  # fmt: skip
            listed = (await getattr(stub, rpc)(request)).jobs
            assert [job.name for job in listed] == ["a/once", "b-nightly", "c"]
            for job in listed:
                got = (await stub.GetJobAlpha1(jobs_pb2.GetJobRequest(name=job.name))).job
                assert job == got
        await http.delete("c")
        listed = (await stub.ListJobsAlpha1(jobs_pb2.ListJobsRequestAlpha1())).jobs
        assert [job.name for job in listed] == ["a/once", "b-nightly"]


async def test_list_jobs_pages_through_a_large_store(sidecar: Sidecar) -> None:
    """More jobs than one page of the store's listing: every one is answered, once, by name."""
    names = [f"job-{n:04d}" for n in range(1200)]
    for name in names:
        await sidecar.app.state.runtime.services.jobs.schedule(name, {"dueTime": "1h"})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.app.state.grpc_api.port}") as channel:
        listed = (await dapr_pb2_grpc.DaprStub(channel).ListJobs(jobs_pb2.ListJobsRequest())).jobs
    assert [job.name for job in listed] == names
