"""Name resolution: which sidecar serves an app id.

Service invocation of another app goes sidecar to sidecar: the caller's l8 asks its resolver for
the address of an l8 that runs beside the target app and forwards the call there. Resolvers are
chosen in the l8 settings file under ``name_resolution``:

.. code-block:: yaml

    name_resolution:
      type: static
      apps:
        orders: ["127.0.0.1:3501", "127.0.0.1:3502"]   # instances are used in turn (round robin)
        billing: 127.0.0.1:3600

or a registry every sidecar registers in with a lease: ``type: redis`` (mesh/redis_registry.py) or
``type: etcd`` (mesh/etcd_registry.py), both built on mesh/registry.py; mesh/name_resolution.py
picks one from the settings.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any, Literal, Protocol

from pydantic import field_validator

from components.errors import ComponentError
from mesh.settings import SettingsModel, settings_error


class ResolveError(ComponentError):
    """No sidecar is known for the app id (the message says why)."""


class Resolver(Protocol):
    kind: str

    async def start(self, app_id: str, address: str) -> None:
        """Begin serving: a registry registers this sidecar (``address``) for ``app_id``."""
        ...

    async def aclose(self) -> None:
        """Stop: a registry removes this sidecar's registration. Idempotent."""
        ...

    async def resolve(self, app_id: str) -> str:
        """``host:port`` of a sidecar of ``app_id``: one instance per call, spread over the
        instances; raises :class:`ResolveError` when there is none."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the metadata API shows of this resolver."""
        ...


class StaticResolver:
    """A fixed map of app ids to sidecar addresses, from the settings file."""

    kind = "static"

    def __init__(self, apps: Mapping[str, list[str]]) -> None:
        self._apps = {app_id: list(addresses) for app_id, addresses in apps.items()}
        self._turns: dict[str, Iterator[str]] = {
            app_id: itertools.cycle(addresses) for app_id, addresses in self._apps.items() if addresses
        }

    async def start(self, app_id: str, address: str) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def resolve(self, app_id: str) -> str:
        turn = self._turns.get(app_id)
        if turn is None:
            raise ResolveError(f"couldn't find service: {app_id}")
        return next(turn)

    def describe(self) -> dict[str, Any]:
        return {"type": self.kind, "apps": {app_id: list(a) for app_id, a in self._apps.items()}}


class StaticResolverSettings(SettingsModel):
    type: Literal["static"] = "static"
    apps: dict[str, list[str]] = {}
    """App id -> the ``host:port`` of its sidecars (one, or a list used in turn)."""

    @field_validator("apps", mode="before")
    @classmethod
    def _apps(cls, value: Any) -> dict[str, list[str]]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise settings_error("must map app ids to host:port addresses")
        parsed: dict[str, list[str]] = {}
        for app_id, given in value.items():
            addresses = [given] if isinstance(given, str) else given
            if not isinstance(addresses, list) or not addresses:
                raise settings_error("give a host:port or a list of them", str(app_id))
            for address in addresses:
                host, _, port = str(address).rpartition(":")
                if not host or not port.isdigit() or not 0 < int(port) < 65536:
                    raise settings_error(f"{address!r} is not host:port", str(app_id))
            parsed[str(app_id)] = [str(address) for address in addresses]
        return parsed
