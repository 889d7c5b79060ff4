"""Discovery of programmatic subscriptions: read the app's ``GET /dapr/subscribe`` once its port
accepts connections, and again each time the app comes back after it stopped listening (a restart).

Restart detection is a TCP probe every ``probe_interval``: the app is "down" after one refused (or
timed-out) connection and "back" after the next accepted one. A restart during which the port is
closed for less than one interval goes unseen, and the subscriptions read before stay in force; a
false "down" (the probe timed out on a busy app) costs one extra read that changes nothing. A probe
carries no HTTP request, so the app's access log shows nothing.

Change semantics: ``on_change`` is called after the first read (even with an empty list, so the
runtime knows discovery has an answer) and afterwards only when a read returns a different list.
A restarted app with the same subscriptions therefore causes no call, and it keeps receiving:
l8's broker subscriptions never depended on the app's process; messages that arrive while it is
down fail delivery and follow the usual retry and dead-letter rules.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from mesh.app_channel import AppConnection, AppUnreachable
from services.pubsub.programmatic import parse_programmatic
from services.pubsub.subscriptions import Subscription

log = structlog.get_logger(__name__)

OnChange = Callable[[list[Subscription]], Awaitable[None]]


class SubscriptionDiscovery:
    """Watches the app and hands its programmatic subscriptions to ``on_change``.

    ``run()`` is meant to be a background task of the runtime: it returns at once when there is no
    app channel (no ``--app-port``), otherwise it runs until cancelled, and cancellation at any
    await is clean (it holds nothing but the channel's pooled connections, which the channel owns).
    An exception from ``on_change`` is logged and watching goes on.
    """

    def __init__(
        self,
        channel: AppConnection,
        app_id: str,
        on_change: OnChange,
        *,
        probe_interval: float = 0.5,
        read_timeout: float = 10.0,
        retries: int = 3,
        max_read_pause: float = 30.0,
    ) -> None:
        """``retries``: further attempts after a transport failure of ``GET /dapr/subscribe``, one
        ``probe_interval`` apart. When all fail, the read is tried again after a pause that doubles
        up to ``max_read_pause``, without calling ``on_change``."""
        self._channel = channel
        self._app_id = app_id
        self._on_change = on_change
        self._probe_interval = probe_interval
        self._read_timeout = read_timeout
        self._retries = retries
        self._max_read_pause = max_read_pause
        self._current: list[Subscription] = []
        self._first_read = asyncio.Event()

    @property
    def current(self) -> list[Subscription]:
        """The subscriptions last handed to ``on_change`` (empty before the first read)."""
        return list(self._current)

    async def first_read(self) -> list[Subscription]:
        """Wait until the first read has been handed to ``on_change``; its subscriptions. Never
        returns when there is no app or it never answers: bound it with ``asyncio.wait_for``."""
        await self._first_read.wait()
        return self.current

    async def run(self) -> None:
        """Until cancelled: wait for the app's port, read, hand over, wait for the port to close,
        and again. Returns at once without an app channel."""
        if not self._channel.configured:
            return
        pause = self._probe_interval
        while True:
            await self._until_listening(True)
            subscriptions = await self.read()
            if subscriptions is None:
                await asyncio.sleep(pause)
                pause = min(pause * 2, self._max_read_pause)
                continue
            pause = self._probe_interval
            await self._publish(subscriptions)
            await self._until_listening(False)
            log.info("app stopped listening; its subscriptions are read again when it is back")

    async def read(self) -> list[Subscription] | None:
        """One ``GET /dapr/subscribe`` with Dapr's rules: 404 is no subscriptions, another non-2xx
        status is logged and counts as none, a 2xx body is parsed. ``None`` when the app could not
        be reached, even after the retries."""
        headers = {"Content-Type": "application/json", "dapr-app-id": self._app_id}
        failures = 0
        while True:
            try:
                response = await self._channel.read_subscriptions(headers, self._read_timeout)
            except AppUnreachable as exc:
                failures += 1
                if failures > self._retries:
                    log.error("cannot read the app's subscriptions", error=str(exc), attempts=failures)
                    return None
                await asyncio.sleep(self._probe_interval)
                continue
            if response.status == 404:
                log.debug("app has no /dapr/subscribe endpoint; no programmatic subscriptions")
                return []
            if not 200 <= response.status < 300:
                log.error(
                    "app returned an error status from /dapr/subscribe; no programmatic subscriptions",
                    status=response.status,
                )
                return []
            subscriptions = parse_programmatic(response.body)
            log.debug("app's subscriptions read", count=len(subscriptions))
            return subscriptions

    async def _publish(self, subscriptions: list[Subscription]) -> None:
        if self._first_read.is_set() and subscriptions == self._current:
            log.debug("app's subscriptions unchanged")
            return
        self._current = subscriptions
        try:
            await self._on_change(list(subscriptions))
        except Exception:
            log.exception("applying the app's subscriptions failed")
        self._first_read.set()

    async def _until_listening(self, listening: bool) -> None:
        timeout = max(self._probe_interval, 0.5)
        # Polling is the point: the only signal that the app's port opened or closed is a probe.
        while await self._channel.listening(timeout=timeout) != listening:  # noqa: ASYNC110
            await asyncio.sleep(self._probe_interval)
