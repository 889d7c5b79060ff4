"""The sidecar's life as the API sees it: whether it is ready (health answers from this before and
during start-up, when no service exists yet) and how the API asks it to stop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)


class Readiness:
    """Ready once every component has started and the services are built; not ready again from the
    moment shutdown begins."""

    def __init__(self, app_id: str) -> None:
        self.app_id = app_id
        self.ready = False
        self.stopping = False
        """Shutdown has begun (the actuator's runtime indicator says DOWN, not INIT)."""

    def stop(self) -> None:
        """Shutdown has begun: not ready from now on, while in-flight requests finish."""
        self.ready = False
        self.stopping = True


class ShutdownSwitch:
    """How the API asks the server to stop (``POST /v1.0/shutdown``): the server plugs in the stop."""

    def __init__(self) -> None:
        self._stop: Callable[[], None] | None = None
        self.requested = False

    def connect(self, stop: Callable[[], None]) -> None:
        self._stop = stop

    def request(self, *, force: bool = False) -> None:
        self.requested = True
        loop = asyncio.get_running_loop()
        if force:
            # Dapr exits with status 1 about 100 ms after answering, skipping the graceful path.
            loop.call_later(0.1, os._exit, 1)
        elif self._stop is not None:
            # Let the 204 go out before the server stops accepting.
            loop.call_later(0.05, self._stop)
        else:
            log.warning("shutdown requested but no server is attached")
