"""An actor timer as registered: its schedule (``dueTime``, ``period``, ``ttl``) and its callback and
data, kept by the activation while the timer runs (read back by GetActorTimer / ListActorTimers)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from services import durations


@dataclass(slots=True, frozen=True)
class Schedule:
    """When a reminder's or timer's ticks fall, from its ``dueTime``, ``period`` and ``ttl``."""

    due_time: str
    period: str
    ttl: str
    first: datetime
    every: durations.Period
    expires: datetime | None

    @classmethod
    def parse(cls, due_time: str, period: str, ttl: str, now: datetime) -> Schedule:
        """Raises ValueError naming the bad field."""
        first = durations.due_time(due_time, now)
        every = durations.period(period)
        expires = durations.expiry(ttl, now) if ttl else None
        if expires is not None and expires < first:
            raise ValueError(f"ttl {ttl!r} ends before the due time")
        return cls(due_time, period, ttl, first, every, expires)

    def following(self, tick: datetime, count: int) -> datetime | None:
        """The tick after the ``count``-th one (at ``tick``), or None when there is no other."""
        if self.every.every is None:
            return None
        if self.every.repetitions is not None and count >= self.every.repetitions:
            return None
        following = tick + self.every.every
        if self.expires is not None and following > self.expires:
            return None
        return following


@dataclass(slots=True, frozen=True)
class Timer:
    name: str
    callback: str
    data: bytes | None
    schedule: Schedule

    def body(self) -> bytes:
        """Dapr's timer tick body: ``{"callback","data","dueTime","period"}``, ``data`` null when
        the timer has none (the Python SDK reads the key whatever the timer holds)."""
        fields: dict[str, Any] = {"callback": self.callback}
        fields["data"] = None if self.data is None else orjson.Fragment(self.data)
        fields["dueTime"] = self.schedule.due_time
        fields["period"] = self.schedule.period
        return orjson.dumps(fields)


@dataclass(slots=True, frozen=True)
class RunningTimer:
    """A timer of an activation and the task that fires it."""

    timer: Timer
    task: asyncio.Task[None]


def rfc3339(moment: datetime) -> str:
    """Go's ``time.RFC3339Nano`` of a UTC time: no trailing zeros in the fraction."""
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def described(timer: Timer, actor_type: str, actor_id: str) -> dict[str, Any]:
    """A timer as daprd answers GET ``.../timers/{name}``: ``actorType``, ``actorID`` and, when
    set, ``dueTime``, ``period``, ``ttl`` (the time it ends, RFC 3339), ``callback`` and ``data``
    (raw JSON as registered)."""
    found: dict[str, Any] = {"actorType": actor_type, "actorID": actor_id}
    schedule = timer.schedule
    if schedule.due_time:
        found["dueTime"] = schedule.due_time
    if schedule.period:
        found["period"] = schedule.period
    if schedule.expires is not None:
        found["ttl"] = rfc3339(schedule.expires)
    if timer.callback:
        found["callback"] = timer.callback
    if timer.data is not None:
        found["data"] = orjson.Fragment(timer.data)
    return found
