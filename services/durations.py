"""Dapr's time values for actors, reminders, timers and jobs (dapr-http-api.md section 12.2).

* A **duration**: Go's syntax (``1h2m3s``, ``0h0m9s0ms``, the Python SDK's ``1h0m0s0ms0μs``, with
  either micro sign) or ISO 8601 (``PT10S``, ``P1D``, ``P1DT2H``).
* A **due time** or an **expiry** (``ttl``): a duration from now, or an RFC 3339 timestamp.
* A **period**: a duration, or ISO 8601 repetitions ``R5/PT10S`` (five ticks); zero repetitions
  are refused. An empty or zero period means one tick (the Python SDK sends ``0h0m0s0ms0μs``).

Every parser raises ``ValueError`` whose text says what is wrong, for the caller's error body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_GO_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_ISO = re.compile(
    r"P(?:(?P<years>\d+(?:\.\d+)?)Y)?(?:(?P<months>\d+(?:\.\d+)?)M)?(?:(?P<weeks>\d+(?:\.\d+)?)W)?"
    r"(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?",
    re.IGNORECASE,
)
_ISO_SECONDS = {
    "years": 365 * 86400.0,
    "months": 30 * 86400.0,
    "weeks": 7 * 86400.0,
    "days": 86400.0,
    "hours": 3600.0,
    "minutes": 60.0,
    "seconds": 1.0,
}
_REPETITIONS = re.compile(r"R(\d*)/(.+)", re.IGNORECASE)


def go_duration(text: str) -> timedelta:
    """Go's ``time.ParseDuration`` syntax (a sign is refused: Dapr's times are never negative)."""
    value = text.strip()
    if value == "0":
        return timedelta(0)
    if not value or _GO_PART.sub("", value) != "":
        raise ValueError(f"{text!r} is not a duration (use e.g. 10s, 1m30s, 1h)")
    return timedelta(seconds=sum(float(n) * _GO_UNIT[unit] for n, unit in _GO_PART.findall(value)))


def iso_duration(text: str) -> timedelta:
    """ISO 8601's ``PnYnMnWnDTnHnMnS`` (a year is 365 days and a month 30, as Dapr counts them)."""
    value = text.strip()
    match = _ISO.fullmatch(value)
    if match is None or value.upper() in ("P", "PT") or value.upper().endswith("T"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration (use e.g. PT10S, P1D)")
    return timedelta(seconds=sum(float(v) * _ISO_SECONDS[k] for k, v in match.groupdict().items() if v))


def duration(text: str) -> timedelta:
    """Go's syntax or ISO 8601's."""
    value = text.strip()
    if value[:1] in ("P", "p"):
        return iso_duration(value)
    return go_duration(value)


def timestamp(text: str) -> datetime:
    """An RFC 3339 timestamp (``2026-12-06T10:00:00Z``, an offset, or fractions of a second)."""
    value = text.strip()
    try:
        found = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{text!r} is not an RFC 3339 time") from None
    if found.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone (RFC 3339 needs Z or an offset)")
    return found.astimezone(UTC)


def due_time(text: str, now: datetime) -> datetime:
    """When a due time ``text`` falls: ``now`` plus a duration, or an RFC 3339 time."""
    return _moment(text, now, "due time")


def expiry(text: str, now: datetime) -> datetime:
    """When a ``ttl`` ends: ``now`` plus a duration, or an RFC 3339 time."""
    return _moment(text, now, "ttl")


def _moment(text: str, now: datetime, what: str) -> datetime:
    value = text.strip()
    if not value:
        return now
    try:
        return now + duration(value)
    except ValueError:
        pass
    try:
        return timestamp(value)
    except ValueError:
        raise ValueError(f"{what} {text!r} is neither a duration nor an RFC 3339 time") from None


@dataclass(slots=True, frozen=True)
class Period:
    every: timedelta | None
    """None: one tick only."""
    repetitions: int | None
    """How many ticks in all; None: no end."""


def period(text: str) -> Period:
    """A reminder's or timer's period: empty (one tick), a duration, or ``Rn/<duration>``."""
    value = text.strip()
    if not value:
        return Period(None, None)
    match = _REPETITIONS.fullmatch(value)
    if match is None:
        every = duration(value)
        if every <= timedelta(0):
            return Period(None, None)  # the SDKs' way of saying "no period" (Python's 0h0m0s0ms0μs)
        return Period(every, None)
    count, rest = match.groups()
    repetitions = int(count) if count else None
    if repetitions == 0:
        raise ValueError(f"period {text!r} has zero repetitions")
    every = duration(rest)
    if every <= timedelta(0):
        raise ValueError(f"period {text!r} must be above zero")
    return Period(every, repetitions)
