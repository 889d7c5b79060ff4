"""ScheduleJob, GetJob, DeleteJob, DeleteJobsByPrefix, ListJobs (and their ``Alpha1`` names) over
services/jobs.py: a request's ``Job`` is handed over as the HTTP API's JSON body, so both
transports check it in one place and one order, and store the same job (``data``:
routers/grpc/payloads.py)."""

from __future__ import annotations

from typing import Any

from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import jobs_pb2
from google.protobuf import duration_pb2

from routers.grpc.calls import Context, Unary
from routers.grpc.payloads import any_of, json_of
from services.sidecar import Services

_OPTIONAL = (("schedule", "schedule"), ("due_time", "dueTime"), ("repeats", "repeats"), ("ttl", "ttl"))


def policy_json(policy: common_pb2.JobFailurePolicy) -> dict[str, Any] | None:
    """A ``JobFailurePolicy`` as the HTTP API's ``failurePolicy``."""
    if policy.HasField("drop"):
        return {"drop": {}}
    if policy.HasField("constant"):
        constant: dict[str, Any] = {}
        if policy.constant.HasField("interval"):
            constant["interval"] = policy.constant.interval.ToJsonString()
        if policy.constant.HasField("max_retries"):
            constant["maxRetries"] = policy.constant.max_retries
        return {"constant": constant}
    return None


def policy_message(found: dict[str, Any]) -> common_pb2.JobFailurePolicy:
    if "constant" in found:
        constant = common_pb2.JobFailurePolicyConstant()
        if "interval" in found["constant"]:
            interval = duration_pb2.Duration()
            interval.FromJsonString(found["constant"]["interval"])
            constant.interval.CopyFrom(interval)
        if "maxRetries" in found["constant"]:
            constant.max_retries = found["constant"]["maxRetries"]
        return common_pb2.JobFailurePolicy(constant=constant)
    return common_pb2.JobFailurePolicy(drop=common_pb2.JobFailurePolicyDrop())


def _body(request: Any) -> dict[str, Any]:
    job = request.job
    body: dict[str, Any] = {
        json_name: getattr(job, field) for field, json_name in _OPTIONAL if job.HasField(field)
    }
    if job.HasField("data"):
        present, value = json_of(job.data)
        if present:
            body["data"] = value
    if job.HasField("failure_policy"):
        policy = policy_json(job.failure_policy)
        if policy is not None:
            body["failurePolicy"] = policy
    if request.overwrite:
        body["overwrite"] = True
    return body


async def schedule_job(services: Services, request: Any, context: Context) -> jobs_pb2.ScheduleJobResponse:
    await services.jobs.schedule(request.job.name, _body(request))
    return jobs_pb2.ScheduleJobResponse()


def _job(found: dict[str, Any]) -> jobs_pb2.Job:
    """A job as services/jobs.py renders it, as Dapr's ``Job`` message."""
    job = jobs_pb2.Job(name=found["name"])
    for field, json_name in _OPTIONAL:
        if json_name in found:
            setattr(job, field, found[json_name])
    if "data" in found:
        job.data.CopyFrom(any_of(found["data"]["value"]))
    job.failure_policy.CopyFrom(policy_message(found["failurePolicy"]))
    return job


async def get_job(services: Services, request: Any, context: Context) -> jobs_pb2.GetJobResponse:
    return jobs_pb2.GetJobResponse(job=_job(await services.jobs.get(request.name)))


async def list_jobs(services: Services, request: Any, context: Context) -> Any:
    """Every job of this app, by name (the request has no field)."""
    jobs = [_job(found) for found in await services.jobs.list_jobs()]
    return _LISTED[type(request)](jobs=jobs)


async def delete_job(services: Services, request: Any, context: Context) -> jobs_pb2.DeleteJobResponse:
    await services.jobs.delete(request.name)
    return jobs_pb2.DeleteJobResponse()


async def delete_jobs_by_prefix(services: Services, request: Any, context: Context) -> Any:
    await services.jobs.delete_prefix(request.name_prefix)
    return _BY_PREFIX[type(request)]()


_BY_PREFIX: dict[type, type] = {
    jobs_pb2.DeleteJobsByPrefixRequest: jobs_pb2.DeleteJobsByPrefixResponse,
    jobs_pb2.DeleteJobsByPrefixRequestAlpha1: jobs_pb2.DeleteJobsByPrefixResponseAlpha1,
}

_LISTED: dict[type, type] = {
    jobs_pb2.ListJobsRequest: jobs_pb2.ListJobsResponse,
    jobs_pb2.ListJobsRequestAlpha1: jobs_pb2.ListJobsResponseAlpha1,
}

RPCS: dict[str, Unary] = {
    **{f"ScheduleJob{s}": schedule_job for s in ("", "Alpha1")},
    **{f"GetJob{s}": get_job for s in ("", "Alpha1")},
    **{f"DeleteJob{s}": delete_job for s in ("", "Alpha1")},
    **{f"DeleteJobsByPrefix{s}": delete_jobs_by_prefix for s in ("", "Alpha1")},
    **{f"ListJobs{s}": list_jobs for s in ("", "Alpha1")},
}
