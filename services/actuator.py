"""Layotto's actuator: health (liveness, readiness), info, and the live log level.

Health answers Layotto's shape, ``{"status": S, "components": {name: {"status": S, "details":
{...}}}}`` with S one of ``UP``, ``DOWN``, ``INIT``: any DOWN makes the whole DOWN, else any INIT
makes it INIT. Two kinds of indicator:

- ``runtime_startup``: INIT until start-up ends, UP while serving, DOWN once shutdown began. It is
  the whole of liveness: a failing liveness probe restarts the pod, which cannot bring a backend
  back (Layotto puts its component indicators under both; l8 keeps them to readiness).
- one per started component, by its name: a component whose backend can fail answers
  ``ping()`` (components/health.py) within :data:`PING_TIMEOUT`; one without (in-memory stores,
  environment secrets) is UP once started. Each answer is kept for :data:`CACHE_SECONDS`, and
  probes that arrive while a ping is in flight wait for that one, so probes cannot hammer a backend.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import structlog

from components.health import HealthCheck
from components.loaded import LoadedComponent
from services import errors
from services.log_levels import PROCESS_LEVELS, LogLevels, UnknownLevel, level_number, logger_name

log = structlog.get_logger(__name__)

PING_TIMEOUT = 1.0
"""Seconds a component's health check may take before it counts as DOWN."""
CACHE_SECONDS = 1.0
"""How long a component's health answer is reused."""
RUNTIME = "runtime_startup"


class Status(StrEnum):
    UP = "UP"
    DOWN = "DOWN"
    INIT = "INIT"


@dataclass(frozen=True, slots=True)
class Indication:
    status: Status
    details: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"status": self.status.value, **({"details": self.details} if self.details else {})}


@dataclass(frozen=True, slots=True)
class Health:
    status: Status
    components: dict[str, Indication]

    @property
    def up(self) -> bool:
        return self.status is Status.UP

    def body(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "components": {name: indication.body() for name, indication in self.components.items()},
        }

    @classmethod
    def of(cls, components: dict[str, Indication]) -> Health:
        statuses = {indication.status for indication in components.values()}
        status = (
            Status.DOWN if Status.DOWN in statuses else Status.INIT if Status.INIT in statuses else Status.UP
        )
        return cls(status, components)


def runtime_indication(*, serving: bool, stopping: bool) -> Indication:
    if serving:
        return Indication(Status.UP)
    if stopping:
        return Indication(Status.DOWN, {"reason": "shutdown"})
    return Indication(Status.INIT, {"reason": "starting"})


class Indicator:
    """One component's health: its ping's answer, kept for ``cache`` seconds, one ping at a time."""

    def __init__(
        self,
        details: dict[str, Any],
        ping: Callable[[], Awaitable[None]] | None,
        *,
        timeout: float = PING_TIMEOUT,
        cache: float = CACHE_SECONDS,
    ) -> None:
        self._details = details
        self._ping = ping
        self._timeout = timeout
        self._cache = cache
        self._last: Indication | None = None
        self._checked_at = 0.0
        self._running: asyncio.Future[Indication] | None = None

    async def check(self) -> Indication:
        if self._ping is None:
            return Indication(Status.UP, self._details)
        if self._last is not None and time.monotonic() - self._checked_at < self._cache:
            return self._last
        running = self._running
        if running is None:
            running = self._running = asyncio.ensure_future(self._probe())
        # Shielded: a probe that gives up (its client went away) leaves the ping to the others.
        return await asyncio.shield(running)

    async def _probe(self) -> Indication:
        assert self._ping is not None
        try:
            async with asyncio.timeout(self._timeout):
                await self._ping()
        except TimeoutError:
            found = Indication(
                Status.DOWN, {**self._details, "reason": f"no answer within {self._timeout:g}s"}
            )
        # Whatever a backend raises, the answer is DOWN with its reason: a health check reports.
        except Exception as exc:
            found = Indication(Status.DOWN, {**self._details, "reason": str(exc) or type(exc).__name__})
        else:
            found = Indication(Status.UP, self._details)
        before = self._last.status if self._last is not None else Status.UP
        self._last, self._checked_at, self._running = found, time.monotonic(), None
        if found.status is not before:  # logged when it changes, not on every probe
            if found.status is Status.DOWN:
                log.warning("component health check failed", reason=found.details["reason"], **self._details)
            else:
                log.info("component healthy again", **self._details)
        return found


@dataclass(frozen=True, slots=True)
class AppInfo:
    app_id: str
    version: str
    dapr_api_version: str
    started: datetime


class ActuatorService:
    def __init__(
        self,
        indicators: dict[str, Indicator],
        info: AppInfo,
        components: list[LoadedComponent],
        levels: LogLevels = PROCESS_LEVELS,
    ) -> None:
        self._indicators = indicators
        self._info = info
        self._components = components
        self._levels = levels

    @classmethod
    def from_components(
        cls,
        components: Iterable[LoadedComponent],
        info: AppInfo,
        *,
        timeout: float = PING_TIMEOUT,
        cache: float = CACHE_SECONDS,
        levels: LogLevels = PROCESS_LEVELS,
    ) -> ActuatorService:
        listed = list(components)  # names are unique across blocks (the resources loader checks)
        indicators = {
            component.name: Indicator(
                {"type": component.type},
                component.instance.ping if isinstance(component.instance, HealthCheck) else None,
                timeout=timeout,
                cache=cache,
            )
            for component in listed
        }
        return cls(indicators, info, listed, levels)

    @staticmethod
    def liveness(runtime: Indication) -> Health:
        return Health.of({RUNTIME: runtime})

    async def readiness(self, runtime: Indication) -> Health:
        names = list(self._indicators)
        answers = await asyncio.gather(*(self._indicators[name].check() for name in names))
        return Health.of({RUNTIME: runtime, **dict(zip(names, answers, strict=True))})

    def info(self) -> dict[str, Any]:
        """Layotto's contributors: ``app`` (name, version, app id, start time), ``components``
        and ``loggers`` (the levels set)."""
        info = self._info
        return {
            "app": {
                "name": "l8",
                "version": info.version,
                "daprApiVersion": info.dapr_api_version,
                "appId": info.app_id,
                "startTime": info.started.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "uptimeSeconds": round((datetime.now(UTC) - info.started).total_seconds(), 3),
            },
            "components": [{"name": c.name, "type": c.type, "version": c.version} for c in self._components],
            "loggers": self._levels.configured(),
        }

    def set_log_level(self, component: object, level: object) -> None:
        """Layotto's ``POST /actuator/logger``: ``component`` names a logger (``root`` or empty
        for the root), ``level`` one of trace, debug, info, warn, error, fatal."""
        if not isinstance(component, str):
            raise errors.malformed("component must be a logger's name (a string; root for the root)")
        if not isinstance(level, str):
            raise errors.malformed("level must be one of trace, debug, info, warn, error, fatal")
        try:
            number = level_number(level)
        except UnknownLevel as exc:
            raise errors.malformed(str(exc)) from None
        name = logger_name(component)
        self._levels.set(name, number)
        log.info("log level changed", target=name or "root", new_level=level.lower())
