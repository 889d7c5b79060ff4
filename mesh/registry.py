"""What every name-resolution registry shares (Redis in mesh/redis_registry.py, etcd in
mesh/etcd_registry.py): a sidecar registers ``app id -> host:port`` with a lease of ``ttl`` seconds,
renews it every third of the ttl and removes it when it stops, so a sidecar that dies drops out when
its lease ends; callers keep what they read for at most ``cacheSeconds`` and take the instances in
turn (round robin).

A registry subclass says how to connect, register or renew, list the live instances of an app id,
deregister and disconnect; this class holds the heartbeat (mesh/lease.py, shared with placement),
the cache and the metadata view.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from typing import Any

import structlog
from pydantic import field_validator

from components.metadata import parse_duration
from mesh.errors import SettingsError
from mesh.lease import LeaseKeeper
from mesh.resolver import ResolveError
from mesh.settings import SettingsModel, settings_error

log = structlog.get_logger(__name__)

_MAX_CACHED = 4096


def seconds(value: Any) -> float:
    """A duration of the ``name_resolution`` settings: ``10``, ``10s``, ``1.5s`` or ``500ms``."""
    try:
        found = parse_duration(value).total_seconds()
    except ValueError:
        raise settings_error(f"{value!r} is not a number of seconds") from None
    if found <= 0:
        raise settings_error("must be above zero")
    return found


class RegistrySettings(SettingsModel):
    """What every registry's ``name_resolution`` settings hold."""

    ttl: float = 10.0
    cacheSeconds: float = 1.0
    advertiseAddress: str | None = None

    @field_validator("ttl", "cacheSeconds", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> float:
        return seconds(value)


class LeasedRegistry(abc.ABC):
    """A registry of sidecars with leases; see the module's text."""

    kind: str
    server_field: str
    """The setting naming the registry's server, for error messages."""

    def __init__(self, settings: RegistrySettings) -> None:
        self.ttl = settings.ttl
        self._cache_seconds = settings.cacheSeconds
        self._advertise = settings.advertiseAddress or None
        self._keeper: LeaseKeeper | None = None
        self._registered: tuple[str, str] | None = None
        self._cache: dict[str, tuple[float, list[str]]] = {}
        self._turns: dict[str, int] = {}

    # -- what a registry provides ------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def server(self) -> str:
        """Where the registry is, as the metadata API and error messages show it."""

    @abc.abstractmethod
    async def _connect(self) -> None: ...

    @abc.abstractmethod
    async def _register(self, app_id: str, member: str) -> None:
        """Register or renew ``member`` for ``app_id`` with a lease of ``self.ttl``."""

    @abc.abstractmethod
    async def _live(self, app_id: str) -> list[str]:
        """The addresses of ``app_id`` whose leases have not ended."""

    @abc.abstractmethod
    async def _deregister(self, app_id: str, member: str) -> None: ...

    @abc.abstractmethod
    async def _disconnect(self) -> None: ...

    # -- the Resolver contract ---------------------------------------------------------------------

    async def start(self, app_id: str, address: str) -> None:
        await self._connect()
        if not app_id:
            return  # a sidecar without an app id calls others but cannot be called
        member = self._advertise or address
        try:
            await self._register(app_id, member)
        except Exception as exc:
            with contextlib.suppress(Exception):
                await self._disconnect()
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SettingsError(
                f"name_resolution.{self.server_field}: cannot register at {self.server}: {reason}"
            ) from None
        self._registered = (app_id, member)

        async def renew() -> bool:
            await self._register(app_id, member)
            return True

        self._keeper = LeaseKeeper(self.ttl, renew, name="name resolution heartbeat")
        self._keeper.start(asyncio.get_running_loop().time())
        log.info("registered for name resolution", app_id=app_id, address=member, registry=self.server)

    async def resolve(self, app_id: str) -> str:
        now = time.monotonic()
        cached = self._cache.get(app_id)
        if cached is None or now - cached[0] > self._cache_seconds:
            try:
                addresses = sorted(await self._live(app_id))
            except Exception as exc:
                raise ResolveError(f"name resolution through {self.kind} failed: {exc}") from None
            if len(self._cache) >= _MAX_CACHED and app_id not in self._cache:
                self._cache.clear()  # callers naming ever new app ids do not grow it without end
            cached = self._cache[app_id] = (now, addresses)
        addresses = cached[1]
        if not addresses:
            raise ResolveError(f"couldn't find service: {app_id}")
        # One turn counter per app id, kept across refreshes, so every instance gets its turn.
        turn = self._turns[app_id] = self._turns.get(app_id, -1) + 1
        return addresses[turn % len(addresses)]

    def describe(self) -> dict[str, Any]:
        found: dict[str, Any] = {"type": self.kind, self.server_field: self.server, "ttlSeconds": self.ttl}
        if self._registered is not None:
            found["registered"] = {"appId": self._registered[0], "address": self._registered[1]}
        return found

    async def aclose(self) -> None:
        if self._keeper is not None:
            await self._keeper.stop()
            self._keeper = None
        if self._registered is not None:
            with contextlib.suppress(Exception):
                await self._deregister(*self._registered)  # callers stop using it at once
            self._registered = None
        with contextlib.suppress(Exception):
            await self._disconnect()
