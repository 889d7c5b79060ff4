"""bindings.cron: an input binding that fires on a schedule, with Dapr's schedule syntax.

Metadata: ``schedule`` (required), in the syntax of Dapr's parser (robfig/cron with optional
seconds and descriptors):

* six fields, seconds first: ``*/5 * * * * *`` (every five seconds), ``0 30 3-6,20-23 * * *``;
* the standard five fields, firing at second 0: ``*/15 * * * *``;
* ``@every <duration>`` (Go durations: ``@every 1s``, ``@every 1m30s``), counted from start-up;
* ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily`` (``@midnight``), ``@hourly``;
* a ``CRON_TZ=<zone>`` or ``TZ=<zone>`` prefix reads the fields in that IANA zone; otherwise they
  are read in the sidecar's local time zone, as daprd does.

A schedule that does not parse fails start-up naming ``schedule``. Each firing is an event with no
data and Dapr's metadata: ``timeZone`` (``Local``, the scheduler's zone as Go names it) and
``readTimeUTC`` (Go's ``time.Time`` text). A firing whose delivery fails is not retried by the
binding (the next one comes on schedule), as in Dapr; firings do not wait for each other.
``direction`` and ``route`` are read by the runtime (services/bindings).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from croniter import croniter
from pydantic import field_validator

from components.bindings.base import Feature, ReadEvent, ReadHandler
from components.errors import BackendError
from components.metadata import ComponentMetadata, decode, metadata_error, parse_duration

log = structlog.get_logger(__name__)

_FEATURES = frozenset({Feature.INPUT_BINDING})
_DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}


class Schedule:
    """When a schedule fires next: a cron expression (six fields, seconds first) in a zone, or a
    fixed interval."""

    def __init__(self, text: str) -> None:
        self.text = text
        spec = text.strip()
        self.zone: tzinfo | None = None
        if spec.startswith(("CRON_TZ=", "TZ=")):
            prefix, _, spec = spec.partition(" ")
            name = prefix.split("=", 1)[1]
            try:
                self.zone = ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"provided bad location {name}") from None
            spec = spec.strip()
        self.interval: timedelta | None = None
        self.expression = ""
        if spec.startswith("@every"):
            value = spec.removeprefix("@every").strip()
            try:
                interval = parse_duration(value)
            except ValueError:
                raise ValueError(f"failed to parse duration {spec}") from None
            # robfig/cron rounds up to a whole second, at least one.
            self.interval = timedelta(seconds=max(1, -(-interval.total_seconds() // 1)))
            return
        if spec.startswith("@"):
            expression = _DESCRIPTORS.get(spec)
            if expression is None:
                raise ValueError(f"unrecognized descriptor: {spec}")
        else:
            fields = spec.split()
            if len(fields) == 5:
                fields.insert(0, "0")
            if len(fields) != 6:
                raise ValueError(f"expected 5 to 6 fields, found {len(spec.split())}: [{spec}]")
            expression = " ".join(fields)
        if not croniter.is_valid(expression, second_at_beginning=True):
            raise ValueError(f"invalid cron expression [{spec}]")
        self.expression = expression

    def next_after(self, moment: datetime) -> datetime:
        if self.interval is not None:
            return moment + self.interval
        local = moment.astimezone(self.zone)  # None: the local zone
        following: datetime = croniter(self.expression, local, second_at_beginning=True).get_next(datetime)
        return following


class CronMetadata(ComponentMetadata):
    schedule: Schedule

    model_config = {"arbitrary_types_allowed": True, "extra": "ignore", "frozen": True}

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule(cls, value: object) -> Schedule:
        text = str(value)
        if not text.strip():
            raise metadata_error("schedule not set")
        try:
            return Schedule(text)
        except ValueError as exc:
            raise metadata_error(f"invalid schedule format '{text}': {exc}") from None


def go_time_text(moment: datetime) -> str:
    """Go's ``time.Time.String()`` of a UTC time: ``2006-01-02 15:04:05.999999999 +0000 UTC``."""
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return f"{text} +0000 UTC"


class CronBinding:
    def __init__(self) -> None:
        self._schedule: Schedule | None = None
        self._readers: set[_CronReader] = set()

    async def init(self, metadata: Mapping[str, str]) -> None:
        self._schedule = decode(CronMetadata, metadata).schedule

    def features(self) -> frozenset[Feature]:
        return _FEATURES

    async def read(self, handler: ReadHandler) -> _CronReader:
        if self._schedule is None:
            raise BackendError("cron binding is not initialised or already closed")
        reader = _CronReader(self._schedule, handler, self._readers.discard)
        self._readers.add(reader)
        return reader

    async def close(self) -> None:
        self._schedule = None
        for reader in list(self._readers):
            await reader.stop()


class _CronReader:
    def __init__(
        self, schedule: Schedule, handler: ReadHandler, on_stopped: Callable[[_CronReader], None]
    ) -> None:
        self._schedule = schedule
        self._handler = handler
        self._on_stopped = on_stopped
        self._firings: set[asyncio.Task[None]] = set()
        self._task = asyncio.create_task(self._run(), name=f"cron {schedule.text}")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = self._schedule.next_after(datetime.now(UTC))
        while True:
            wait = (due - datetime.now(UTC)).total_seconds()
            if wait > 0:
                await asyncio.sleep(wait)
            firing = loop.create_task(self._fire())
            self._firings.add(firing)
            firing.add_done_callback(self._firings.discard)
            # The next firing after this one's due time: a slow loop skips ticks, never bunches them.
            due = self._schedule.next_after(max(due, datetime.now(UTC) - timedelta(milliseconds=1)))

    async def _fire(self) -> None:
        event = ReadEvent(b"", {"timeZone": "Local", "readTimeUTC": go_time_text(datetime.now(UTC))})
        try:
            await self._handler(event)
        except Exception as exc:
            log.debug("cron event not taken", schedule=self._schedule.text, error=str(exc))

    async def stop(self) -> None:
        self._task.cancel()
        for firing in list(self._firings):
            firing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(self._task, *self._firings, return_exceptions=True)
        self._on_stopped(self)
