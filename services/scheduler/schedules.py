"""When a job's ticks fall: Dapr's schedules, reminders' periods, ``dueTime``, ``repeats``, ``ttl``,
and the failure policy's rules.

* A job's ``schedule`` (Dapr's jobs API): ``@every <duration>``; ``@yearly`` (``@annually``),
  ``@monthly``, ``@weekly``, ``@daily`` (``@midnight``), ``@hourly``; cron with six fields, seconds
  first (five fields fire at second 0), read in UTC as Dapr's scheduler does; or an ISO 8601
  period (``PT10S``, ``R5/PT10S``), the form reminders are stored in.
* A reminder's ``schedule`` is its period (services/durations.py ``period``): empty for one tick,
  a duration, or ``Rn/<duration>``.
* The first tick is ``dueTime`` when given (a duration from now or an RFC 3339 time), else the
  schedule's first time after now. ``repeats`` (and a period's ``Rn``) count ticks in all; no tick
  falls after the ``ttl``'s end. A tick that fires late (a busy sidecar, a slow app) is followed by
  the ones it held up, so none is lost; but ticks missed for longer than ``CATCH_UP`` (no sidecar
  ran) are not made up one by one: the schedule resumes at its first tick within that window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from services import durations
from services.scheduler.base import Job

if TYPE_CHECKING:  # croniter is imported only when a cron schedule is read
    from components.bindings.cron import Schedule as CronSchedule

CATCH_UP = 10.0
"""Seconds of missed ticks that are still delivered, one after another."""
DEFAULT_RETRY_INTERVAL = 1.0
DEFAULT_MAX_RETRIES = 3


@dataclass(slots=True, frozen=True)
class Cadence:
    """How ticks follow each other: a fixed interval or a cron expression."""

    interval: float | None = None
    cron: CronSchedule | None = None
    repetitions: int | None = None
    """Ticks in all that the schedule itself allows (``R5/...``); None: no end."""

    def after(self, moment: float) -> float:
        if self.interval is not None:
            return moment + self.interval
        assert self.cron is not None
        return self.cron.next_after(datetime.fromtimestamp(moment, UTC)).timestamp()

    def first_after(self, moment: float, since: float) -> float:
        """The first tick after ``moment`` that is not before ``since``."""
        following = self.after(moment)
        if following >= since:
            return following
        if self.interval is not None:
            return following + math.ceil((since - following) / self.interval) * self.interval
        return self.after(since - 1e-6)


def job_cadence(text: str) -> Cadence:
    """A job's schedule; ValueError naming what is wrong."""
    spec = text.strip()
    if not spec:
        raise ValueError("schedule is empty")
    if spec.startswith("@every"):
        every = durations.duration(spec.removeprefix("@every").strip())
        if every <= timedelta(0):
            raise ValueError(f"schedule {text!r}: the interval must be above zero")
        return Cadence(interval=every.total_seconds())
    if spec[:1] in ("P", "p", "R", "r"):
        cadence = reminder_cadence(spec)
        if cadence is None:
            raise ValueError(f"schedule {text!r} has no period")
        return cadence
    from components.bindings.cron import Schedule as CronSchedule

    cron = CronSchedule(spec)
    if cron.zone is None:
        cron.zone = UTC  # Dapr's scheduler reads cron fields in UTC
    return Cadence(cron=cron)


def reminder_cadence(text: str) -> Cadence | None:
    """A reminder's period; None: one tick only."""
    found = durations.period(text)
    if found.every is None:
        return None
    return Cadence(interval=found.every.total_seconds(), repetitions=found.repetitions)


def cadence_of(job: Job) -> Cadence | None:
    if job.key.kind == "reminder":
        return reminder_cadence(job.schedule or "")
    return job_cadence(job.schedule) if job.schedule is not None else None


@dataclass(slots=True, frozen=True)
class Plan:
    first: float
    """The first tick (seconds since the epoch)."""
    expires: float | None


def plan(job: Job, now: float) -> Plan:
    """The first tick and the ttl's end of a job scheduled at ``now``; ValueError when the job's
    times are wrong."""
    moment = datetime.fromtimestamp(now, UTC)
    cadence = cadence_of(job)
    if job.repeats is not None and job.repeats < 0:
        raise ValueError(f"repeats {job.repeats} must not be negative")
    expires = durations.expiry(job.ttl, moment).timestamp() if job.ttl else None
    if job.due_time:
        first = durations.due_time(job.due_time, moment).timestamp()
    elif cadence is not None:
        first = cadence.after(now)
    elif job.key.kind == "reminder":
        first = now
    else:
        raise ValueError("neither schedule nor dueTime")
    validate_failure_policy(job.failure_policy)
    return Plan(first, expires)


def next_tick(job: Job, due: float, ticks_done: int, now: float) -> float | None:
    """The tick after the one at ``due`` once ``ticks_done`` ticks are delivered; None: the job
    is over."""
    cadence = cadence_of(job)
    if cadence is None:
        return None
    limits = [n for n in (job.repeats, cadence.repetitions) if n]
    if limits and ticks_done >= min(limits):
        return None
    following = cadence.first_after(due, now - CATCH_UP)
    expires = job.expires.timestamp() if job.expires is not None else None
    if expires is not None and following > expires:
        return None
    return following


@dataclass(slots=True, frozen=True)
class RetryRule:
    interval: float
    max_retries: int | None
    """None: no limit."""


def validate_failure_policy(policy: dict[str, Any] | None) -> None:
    retry_rule(policy)


def retry_rule(policy: dict[str, Any] | None) -> RetryRule | None:
    """Dapr's ``failurePolicy``: None (the default: constant, 1 s, 3 retries), ``{"drop": {}}``
    (no retry: None), or ``{"constant": {"interval": "5s", "maxRetries": 3}}`` (no ``maxRetries``:
    retried without end)."""
    if policy is None:
        return RetryRule(DEFAULT_RETRY_INTERVAL, DEFAULT_MAX_RETRIES)
    if not isinstance(policy, dict) or len(policy) != 1:
        raise ValueError("failurePolicy must hold one of constant or drop")
    [(kind, body)] = policy.items()
    if kind == "drop":
        return None
    if kind != "constant" or not isinstance(body, dict):
        raise ValueError(f"failurePolicy {kind!r} is unknown (constant or drop)")
    interval = DEFAULT_RETRY_INTERVAL
    if body.get("interval") is not None:
        text = body["interval"]
        if not isinstance(text, str):
            raise ValueError("failurePolicy.constant.interval must be a duration string")
        interval = durations.duration(text).total_seconds()
    retries = body.get("maxRetries", body.get("max_retries"))
    if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int) or retries < 0):
        raise ValueError("failurePolicy.constant.maxRetries must be a whole number")
    return RetryRule(interval, retries)
