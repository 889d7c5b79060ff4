"""Dapr's jobs API (dapr-http-api.md section 13.2) over the scheduler, and the trigger of a job's
ticks as ``POST /job/{name}`` on the app.

A request body is read as protojson reads Dapr's ``JobHTTPRequest``: ``schedule``, ``dueTime``
(``due_time``), ``repeats``, ``ttl``, ``data`` (any JSON), ``failurePolicy``, ``overwrite``.
Checks run in daprd's order: a ``name`` in the body, an empty name (or one with ``|``), neither
schedule nor due time; a schedule, due time, ttl or policy that does not parse answers
ERR_MALFORMED_REQUEST. ``GET`` answers the job as daprd renders its proto: ``data`` as a protobuf
``Any`` holding a ``google.protobuf.Value``, the failure policy with its default filled in; a
missing job is daprd's 500 ``DAPR_SCHEDULER_GET_JOB`` ("job not found", gRPC INTERNAL). A name
taken, without ``overwrite``, is the scheduler's AlreadyExists passed on: 409
``DAPR_SCHEDULER_SCHEDULE_JOB`` (gRPC ALREADY_EXISTS), as daprd's tests of overwrite expect.
``list_jobs`` is the gRPC API's ListJobs (daprd has no HTTP route for it).
"""

from __future__ import annotations

from typing import Any

import orjson
import structlog

from components.errors import ComponentError
from mesh.app_channel import AppConnection, AppUnreachable
from services import errors, protojson
from services.scheduler import schedules
from services.scheduler.base import Job, JobExists, JobKey, Outcome, Scheduler, Tick

log = structlog.get_logger(__name__)

KIND = "job"
VALUE = "type.googleapis.com/google.protobuf.Value"
_PREFIX = "failed deserializing HTTP body: "
_UINT32 = (0, 2**32 - 1)


def _optional_string(body: dict[str, Any], name: str) -> str | None:
    value = protojson.raw(body, name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise errors.malformed(f"{_PREFIX}{name}: a string is expected")
    return value


def _policy(body: dict[str, Any]) -> dict[str, Any] | None:
    value = protojson.raw(body, "failurePolicy")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise errors.malformed(f"{_PREFIX}failurePolicy: an object is expected")
    constant = value.get("constant")
    if constant is not None:
        if not isinstance(constant, dict):
            raise errors.malformed(f"{_PREFIX}failurePolicy.constant: an object is expected")
        found: dict[str, Any] = {}
        interval = constant.get("interval")
        if interval is not None:
            found["interval"] = interval
        retries = protojson.raw(constant, "maxRetries")
        if retries is not None:
            found["maxRetries"] = protojson.integer({"maxRetries": retries}, "maxRetries", _UINT32)
        return {"constant": found}
    if "drop" in value:
        return {"drop": {}}
    return None


def _protojson_duration(seconds: float) -> str:
    """A ``google.protobuf.Duration`` as protojson writes it: ``1s``, ``1.500s``."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    text = f"{seconds:.9f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    digits = 3 if len(fraction) <= 3 else 6 if len(fraction) <= 6 else 9
    return f"{whole}.{fraction.ljust(digits, '0')}s"


def render(job: Job) -> dict[str, Any]:
    """A job as daprd renders its proto (GetJob, ListJobs): ``data`` as a protobuf ``Any``
    holding a ``google.protobuf.Value``, the failure policy with its default filled in."""
    found: dict[str, Any] = {"name": job.key.name}
    if job.schedule is not None:
        found["schedule"] = job.schedule
    if job.repeats:
        found["repeats"] = job.repeats
    if job.due_time is not None:
        found["dueTime"] = job.due_time
    if job.ttl is not None:
        found["ttl"] = job.ttl
    if job.data is not None:
        found["data"] = {"@type": VALUE, "value": orjson.loads(job.data)}
    found["failurePolicy"] = render_policy(job.failure_policy)
    return found


def render_policy(policy: dict[str, Any] | None) -> dict[str, Any]:
    rule = schedules.retry_rule(policy)
    if rule is None:
        return {"drop": {}}
    constant: dict[str, Any] = {"interval": _protojson_duration(rule.interval)}
    if rule.max_retries is not None:
        constant["maxRetries"] = rule.max_retries
    return {"constant": constant}


class JobsService:
    def __init__(self, scheduler: Scheduler, app_id: str) -> None:
        self.scheduler = scheduler
        self.app_id = app_id

    def _key(self, name: str) -> JobKey:
        return JobKey(KIND, self.app_id, name)

    async def schedule(self, name: str, raw: Any) -> None:
        body = dict(protojson.message(raw))
        if protojson.string(body, "name"):
            raise errors.job_name_in_body(self.app_id)
        if not name.strip() or "|" in name:
            raise errors.job_name_empty(self.app_id)
        schedule, due_time = _optional_string(body, "schedule"), _optional_string(body, "dueTime")
        if schedule is None and due_time is None:
            raise errors.job_schedule_empty(self.app_id)
        repeats = (
            protojson.integer(body, "repeats", _UINT32)
            if protojson.raw(body, "repeats") is not None
            else None
        )
        overwrite = protojson.raw(body, "overwrite")
        if overwrite is not None and not isinstance(overwrite, bool):
            raise errors.malformed(f"{_PREFIX}overwrite: a boolean is expected")
        job = Job(
            self._key(name),
            schedule=schedule,
            due_time=due_time,
            repeats=repeats or None,
            ttl=_optional_string(body, "ttl"),
            data=orjson.dumps(body["data"]) if "data" in body else None,
            failure_policy=_policy(body),
        )
        try:
            await self.scheduler.schedule(job, overwrite=bool(overwrite))
        except ValueError as exc:
            raise errors.malformed(f"invalid job {name!r}: {exc}") from None
        except JobExists:
            raise errors.job_exists(self.app_id, name) from None
        except ComponentError as exc:
            raise errors.schedule_job_failed(self.app_id, str(exc)) from None

    async def get(self, name: str) -> dict[str, Any]:
        if not name:
            raise errors.job_name_empty(self.app_id)
        try:
            job = await self.scheduler.get(self._key(name))
        except ComponentError as exc:
            raise errors.get_job_failed(self.app_id, str(exc)) from None
        if job is None:
            reason = f"rpc error: code = NotFound desc = job not found: {name}"
            raise errors.get_job_failed(self.app_id, reason)
        return render(job)

    async def list_jobs(self) -> list[dict[str, Any]]:
        """Every job of the app, by name, each as :meth:`get` renders it (daprd's ListJobs: the
        app's jobs, no filter, no paging in the answer; the store is read a page at a time)."""
        try:
            found = await self.scheduler.list_jobs(KIND, self.app_id)
        except ComponentError as exc:
            raise errors.list_jobs_failed(self.app_id, str(exc)) from None
        return [render(job) for job in found]

    async def delete(self, name: str) -> None:
        if not name:
            raise errors.job_name_empty(self.app_id)
        try:
            await self.scheduler.delete(self._key(name))
        except ComponentError as exc:
            raise errors.delete_job_failed(self.app_id, str(exc)) from None

    async def delete_prefix(self, prefix: str) -> None:
        """Every job of the app whose name starts with ``prefix`` (all of them for ``""``)."""
        try:
            await self.scheduler.delete_prefix(KIND, self.app_id, prefix)
        except ComponentError as exc:
            raise errors.delete_job_failed(self.app_id, str(exc)) from None


class JobTrigger:
    """Delivers a job's tick to the app: ``POST /job/{name}`` with the data JSON, or a gRPC app's
    ``OnJobEventAlpha1`` (2xx and 404, a gRPC app's UNIMPLEMENTED, are done; any other answer, or
    no answer, is a failure retried per the job's policy)."""

    def __init__(self, channel: AppConnection, timeout: float | None = None) -> None:
        self._channel = channel
        self._timeout = timeout

    async def __call__(self, tick: Tick) -> Outcome:
        name = tick.job.key.name
        try:
            answer = await self._channel.deliver_job(name, tick.job.data or b"", self._timeout)
        except AppUnreachable as exc:
            log.warning("job trigger: the app did not answer", job=name, attempt=tick.attempt, error=str(exc))
            return Outcome.FAILED
        if 200 <= answer.status < 300 or answer.status == 404:
            return Outcome.DONE
        log.warning("job trigger: the app failed", job=name, attempt=tick.attempt, status=answer.status)
        return Outcome.FAILED
