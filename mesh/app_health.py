"""Dapr's app health checks (``--enable-app-health-check``): l8 probes the app and tells the parts
that pull work for it (the subscriber, the input bindings) when it goes unhealthy and comes back.

Dapr's rules: every ``interval`` a ``GET <path>`` to the app (no ``dapr-api-token``, no app
pipeline); a 2xx answer within ``timeout`` is a success, anything else (another status, no answer
in time, the app unreachable) a failure. ``threshold`` failures in a row make the app unhealthy;
one success makes it healthy again. Until its first success the app counts as not healthy, so
nothing is pulled for an app that has not said it is ready. The probe is the app channel's: for a
gRPC app (``--app-protocol grpc``) its ``AppCallbackHealthCheck.HealthCheck`` instead of the GET.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from mesh.app_channel import AppConnection, AppUnreachable

log = structlog.get_logger(__name__)


class AppStatus(enum.StrEnum):
    UNKNOWN = "unknown"
    """No probe has succeeded yet."""
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True, slots=True)
class AppHealthSettings:
    path: str = "/healthz"
    interval: float = 5.0
    """Seconds between probes."""
    timeout: float = 0.5
    """Seconds a probe may take."""
    threshold: int = 3
    """Failures in a row before the app is unhealthy."""

    def describe(self) -> dict[str, object]:
        """Dapr's ``appConnectionProperties.health``."""
        return {
            "healthCheckPath": self.path,
            "healthProbeInterval": go_duration(self.interval),
            "healthProbeTimeout": go_duration(self.timeout),
            "healthThreshold": self.threshold,
        }


class HealthTracker:
    """The status the probes' outcomes add up to; ``report`` returns the new status on a change."""

    def __init__(self, threshold: int) -> None:
        self.threshold = max(1, threshold)
        self.status = AppStatus.UNKNOWN
        self.failures = 0
        """Failures in a row since the last success."""

    def report(self, success: bool) -> AppStatus | None:
        if success:
            self.failures = 0
            new = AppStatus.HEALTHY
        else:
            self.failures += 1
            if self.failures < self.threshold:
                return None
            new = AppStatus.UNHEALTHY
        if new is self.status:
            return None
        self.status = new
        return new


Listener = Callable[[AppStatus], Awaitable[None]]


class AppHealth:
    """Probes the app until cancelled (``run()`` is a background task of the runtime) and calls each
    listener, in order, on every change of status."""

    def __init__(self, channel: AppConnection, settings: AppHealthSettings) -> None:
        self._channel = channel
        self.settings = settings
        self._tracker = HealthTracker(settings.threshold)
        self._listeners: list[Listener] = []
        self.changes: dict[AppStatus, int] = {AppStatus.HEALTHY: 0, AppStatus.UNHEALTHY: 0}
        """How many times the status changed, by the new status (read by the metrics)."""

    @property
    def status(self) -> AppStatus:
        return self._tracker.status

    def on_change(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.probe_once()
            await asyncio.sleep(max(0.0, self.settings.interval - (loop.time() - started)))

    async def probe_once(self) -> AppStatus | None:
        """One probe; returns the new status when it changed."""
        failure = await self._probe()
        changed = self._tracker.report(failure is None)
        if changed is None:
            if failure is not None:
                log.debug("app health probe failed", reason=failure, failures=self._tracker.failures)
            return None
        self.changes[changed] += 1
        if changed is AppStatus.HEALTHY:
            log.info("app is healthy", path=self.settings.path)
        else:
            log.warning(
                "app is unhealthy: pub/sub deliveries and input bindings paused",
                path=self.settings.path,
                failures=self._tracker.failures,
                reason=failure,
            )
        for listener in self._listeners:
            try:
                await listener(changed)
            except Exception as exc:
                log.error("app health listener failed", status=str(changed), error=repr(exc))
        return changed

    async def _probe(self) -> str | None:
        """None on success, else why the probe failed."""
        try:
            status = await self._channel.probe(self.settings.path, self.settings.timeout)
        except AppUnreachable as exc:
            return str(exc)
        if 200 <= status < 300:
            return None
        return f"status {status}"


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` of whole milliseconds: ``500ms``, ``5s``, ``1m30s``."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    if minutes:
        return f"{minutes}m{secs}"
    return secs
