"""What the scheduler offers the jobs API and the actor runtime's reminders.

One scheduler per sidecar, over a durable store shared by every sidecar of the app id (Redis or
etcd from ``name_resolution``; one sidecar alone: SQLite under ``--data-dir``). A job is stored with
its schedule and fires **once per tick across all those sidecars**: a sidecar claims a due tick
atomically in the store before it delivers it. Delivery is at least once: a tick claimed by a
sidecar that dies before it reports the outcome is delivered again once the claim's lease ends.
Jobs survive restarts and kill -9.

Kinds: ``"job"`` (Dapr's jobs API, triggered as ``POST /job/{name}`` on the app) and
``"reminder"`` (actor reminders; ``name`` is ``<actorType>||<actorId>||<reminderName>``, delivered by
the actor runtime on the actor's owner).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


class Outcome(enum.Enum):
    DONE = "done"
    """Delivered (or the target answered that there is nothing to do: a job's 404)."""
    CANCEL = "cancel"
    """Delivered, and no further ticks: a reminder answered ``X-Daprremindercancel: true``."""
    FAILED = "failed"
    """Not delivered: tried again per the job's failure policy."""


@dataclass(slots=True, frozen=True)
class JobKey:
    kind: str
    """``"job"`` or ``"reminder"``."""
    app_id: str
    name: str


@dataclass(slots=True)
class Job:
    """A job as given (the strings are kept as the caller wrote them, for reading back) with what
    was computed from them when it was scheduled."""

    key: JobKey
    schedule: str | None = None
    """``@every 1m``, ``@daily``-style, 6-field cron; for reminders the period as given (``20s``,
    ``PT20S``, ``R5/PT10S``)."""
    due_time: str | None = None
    repeats: int | None = None
    ttl: str | None = None
    data: bytes | None = None
    """Raw JSON as given, or None."""
    failure_policy: dict[str, Any] | None = None
    """Dapr's ``failurePolicy``: ``{"constant": {"interval": "5s", "maxRetries": 3}}`` or
    ``{"drop": {}}``; None is the default (constant, 1 s, 3 retries for jobs)."""
    created: datetime | None = None
    expires: datetime | None = None
    """When the ttl ends (no tick after it), computed at scheduling."""


@dataclass(slots=True, frozen=True)
class Tick:
    job: Job
    due: datetime
    """The tick's scheduled time."""
    attempt: int
    """1 for the first delivery of this tick."""


Deliver = Callable[[Tick], Awaitable[Outcome]]


class JobExists(Exception):
    """``schedule(..., overwrite=False)`` found a job of that key."""


class Scheduler(Protocol):
    async def schedule(self, job: Job, *, overwrite: bool) -> None:
        """Store ``job`` (raising :class:`JobExists` when one of its key exists and not
        ``overwrite``); its first tick is its due time, else the schedule's next time. A bad
        schedule raises ``ValueError`` whose text names what is wrong."""

    async def get(self, key: JobKey) -> Job | None: ...

    async def delete(self, key: JobKey) -> bool:
        """``False`` when there was none."""

    async def delete_prefix(self, kind: str, app_id: str, prefix: str) -> int:
        """Delete every job of ``kind`` whose name starts with ``prefix`` (an actor's reminders)."""

    async def list_jobs(self, kind: str, app_id: str, prefix: str = "") -> list[Job]:
        """Every job of ``kind`` whose name starts with ``prefix``, by name (read from the store a
        page at a time)."""

    def deliver(self, kind: str, handler: Deliver, accept: Callable[[JobKey], bool] | None = None) -> None:
        """Who delivers the ticks of ``kind``; ticks of a kind nobody delivers on this sidecar are
        left to the sidecars that do. ``accept`` (optional, cheap, no I/O) says which due jobs this
        sidecar should claim: a reminder only on the sidecar that owns its actor."""
