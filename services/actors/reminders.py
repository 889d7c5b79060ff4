"""Actor reminders: durable, over the sidecar's scheduler (services/scheduler). A reminder is a job
of kind ``"reminder"`` named ``<type>||<id>||<reminder>`` under this app id; the scheduler claims
each tick once across the app's sidecars and hands it to the actor runtime, which delivers it as a
turn of the actor on its owner (``PUT /actors/{type}/{id}/method/remind/{name}``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from services import durations, errors
from services.actors.names import SEPARATOR, reminder_job, reminder_parts
from services.actors.timers import object_body, string_field
from services.scheduler.base import Job, JobExists, JobKey, Scheduler

KIND = "reminder"


def parse_reminder(key: JobKey, body: Any) -> tuple[Job, bool]:
    """The job of a create request's body and whether it overwrites (the default, as SDKs register
    their reminders again at every start). Raises ApiError."""
    body = object_body(body, "actors.CreateReminderRequest")
    due_time = string_field(body, "dueTime")
    period = string_field(body, "period")
    ttl = string_field(body, "ttl")
    try:
        now = datetime.now(UTC)
        durations.due_time(due_time, now)
        durations.period(period)
        expires = durations.expiry(ttl, now) if ttl else None
    except ValueError as exc:
        raise errors.actor_reminder_create_failed(exc) from None
    overwrite = body.get("overwrite")
    if overwrite is not None and not isinstance(overwrite, bool):
        raise errors.malformed("overwrite must be a boolean")
    policy = body.get("failure_policy", body.get("failurePolicy"))
    if policy is not None and not isinstance(policy, dict):
        raise errors.malformed("failure_policy must be an object")
    data = body.get("data")
    job = Job(
        key,
        schedule=period or None,
        due_time=due_time or None,
        ttl=ttl or None,
        data=None if data is None else orjson.dumps(data),
        failure_policy=policy,
        created=now,
        expires=expires,
    )
    return job, overwrite is not False


class Reminders:
    def __init__(self, scheduler: Scheduler | None, app_id: str) -> None:
        self.scheduler = scheduler
        self.app_id = app_id

    def key(self, actor_type: str, actor_id: str, name: str) -> JobKey:
        return JobKey(KIND, self.app_id, reminder_job(actor_type, actor_id, name))

    def _scheduler(self, failed: Any) -> Scheduler:
        if self.scheduler is None:
            raise failed("no scheduler")
        return self.scheduler

    async def create(self, actor_type: str, actor_id: str, name: str, body: Any) -> None:
        scheduler = self._scheduler(errors.actor_reminder_create_failed)
        job, overwrite = parse_reminder(self.key(actor_type, actor_id, name), body)
        try:
            await scheduler.schedule(job, overwrite=overwrite)
        except JobExists:
            raise errors.actor_reminder_exists(name) from None
        except ValueError as exc:
            raise errors.actor_reminder_create_failed(exc) from None
        except Exception as exc:
            raise errors.actor_reminder_create_failed(exc) from exc

    async def get(self, actor_type: str, actor_id: str, name: str) -> dict[str, Any]:
        """Dapr's answer: ``{"actorID","actorType","data","dueTime","period","ttl"}``."""
        scheduler = self._scheduler(errors.actor_reminder_get_failed)
        try:
            job = await scheduler.get(self.key(actor_type, actor_id, name))
        except Exception as exc:
            raise errors.actor_reminder_get_failed(exc) from exc
        if job is None:
            raise errors.actor_reminder_not_found(name)
        return _described(actor_type, actor_id, job)

    async def list_reminders(self, actor_type: str, actor_id: str | None) -> list[tuple[str, dict[str, Any]]]:
        """(name, :meth:`get`'s answer) of every reminder of the type (no id, or an empty one), or of
        one actor of it, by actor id then name (the store is read a page at a time)."""
        actor_id = actor_id or None
        scheduler = self._scheduler(errors.actor_reminder_list_failed)
        prefix = reminder_job(actor_type, actor_id, "") if actor_id else actor_type + SEPARATOR
        try:
            jobs = await scheduler.list_jobs(KIND, self.app_id, prefix)
        except Exception as exc:
            raise errors.actor_reminder_list_failed(exc) from exc
        found = []
        for job in jobs:
            parts = reminder_parts(job.key.name)
            # an id may hold "||": the prefix of actor "a" also matches actor "a||b"'s reminders
            if parts is not None and (actor_id is None or parts[1] == actor_id):
                found.append((parts[1], parts[2], _described(actor_type, parts[1], job)))
        found.sort(key=lambda entry: entry[:2])
        return [(name, described) for _, name, described in found]

    async def delete(self, actor_type: str, actor_id: str, name: str) -> None:
        scheduler = self._scheduler(errors.actor_reminder_delete_failed)
        try:
            await scheduler.delete(self.key(actor_type, actor_id, name))
        except Exception as exc:
            raise errors.actor_reminder_delete_failed(exc) from exc

    async def delete_all(self, actor_type: str, actor_id: str | None) -> None:
        """Every reminder of the type, or of one actor of it."""
        scheduler = self._scheduler(errors.actor_reminder_delete_failed)
        prefix = reminder_job(actor_type, actor_id, "") if actor_id else actor_type + SEPARATOR
        try:
            await scheduler.delete_prefix(KIND, self.app_id, prefix)
        except Exception as exc:
            raise errors.actor_reminder_delete_failed(exc) from exc


def _described(actor_type: str, actor_id: str, job: Job) -> dict[str, Any]:
    found: dict[str, Any] = {"actorID": actor_id, "actorType": actor_type}
    if job.data is not None:
        found["data"] = orjson.Fragment(job.data)
    found["dueTime"] = job.due_time or ""
    found["period"] = job.schedule or ""
    if job.expires is not None:
        found["ttl"] = job.expires.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return found


def tick_body(job: Job) -> bytes:
    """Dapr's reminder tick body: ``{"data","dueTime","period"}`` (no data when there is none)."""
    fields: dict[str, Any] = {}
    if job.data is not None:
        fields["data"] = orjson.Fragment(job.data)
    fields["dueTime"] = job.due_time or ""
    fields["period"] = job.schedule or ""
    return orjson.dumps(fields)
