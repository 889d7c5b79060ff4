"""Name resolution through etcd: every sidecar puts its address under its app id with an etcd lease,
the callers list the live ones (``name_resolution: {type: etcd, endpoints: [host:port, ...]}``).

A sidecar's registration is the key ``<keyPrefix><app-id>/<host:port>`` (``keyPrefix`` defaults to
``l8/nr/``), attached to a lease of ``ttl`` whole seconds (etcd grants at least 2): etcd itself
deletes the key when the lease is not kept alive, so a sidecar that dies drops out within its ttl,
and a graceful stop revokes the lease at once. A lease that lapsed while etcd was unreachable is
granted anew at the next renewal. Settings: the etcd connection as the etcd components take it
(components/etcd_connection.py: ``endpoints``, a list or comma-separated, the first that answers is
used; ``username``/``password``, ``dialTimeout``), ``keyPrefix``, and the registry ones
(mesh/registry.py): ``ttl``, ``cacheSeconds``, ``advertiseAddress``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from components.errors import MetadataError
from components.etcd_connection import EtcdConnectionMetadata, first_answering
from components.metadata import decode
from mesh.errors import SettingsError
from mesh.registry import LeasedRegistry, RegistrySettings
from mesh.settings import settings_error

_ETCD_FIELDS = frozenset(EtcdConnectionMetadata.model_fields)


class EtcdRegistrySettings(RegistrySettings):
    known_extra: ClassVar[frozenset[str]] = _ETCD_FIELDS
    derived: ClassVar[frozenset[str]] = frozenset({"etcd"})

    type: Literal["etcd"] = "etcd"
    keyPrefix: str = "l8/nr/"
    etcd: EtcdConnectionMetadata

    @classmethod
    def prepare(cls, data: Mapping[Any, Any]) -> Any:
        found = {key: value for key, value in data.items() if key not in _ETCD_FIELDS}
        raw = {str(key): value for key, value in data.items() if key in _ETCD_FIELDS and value is not None}
        endpoints = raw.get("endpoints")
        if isinstance(endpoints, list):
            raw["endpoints"] = ",".join(str(endpoint) for endpoint in endpoints)
        if not raw.get("endpoints") or not isinstance(raw["endpoints"], str):
            raise settings_error("give etcd's client address(es) as host:port", "endpoints")
        try:
            found["etcd"] = decode(EtcdConnectionMetadata, {"dialTimeout": "3s", **raw})
        except MetadataError as exc:
            raise settings_error(exc.message, exc.field) from None
        return found


async def registry_client(etcd: EtcdConnectionMetadata) -> tuple[Any, str]:
    """(client, "host:port") on the first endpoint that answers, for a registry or placement; a
    SettingsError naming ``name_resolution.endpoints`` when none does."""
    try:
        return await first_answering(
            etcd.addresses, etcd.username, etcd.password, etcd.dialTimeout.total_seconds()
        )
    except ConnectionError as exc:
        raise SettingsError(f"name_resolution.endpoints: {exc}") from None


class EtcdRegistry(LeasedRegistry):
    kind = "etcd"
    server_field = "endpoints"

    def __init__(self, settings: EtcdRegistrySettings) -> None:
        super().__init__(settings)
        self._etcd = settings.etcd
        self._prefix = settings.keyPrefix
        self._lease_ttl = max(1, math.ceil(self.ttl))
        self._client: Any = None
        self._server = ",".join(f"{host}:{port}" for host, port in settings.etcd.addresses)
        self._lease: Any = None

    @property
    def server(self) -> str:
        return self._server

    def _key(self, app_id: str, member: str = "") -> bytes:
        return f"{self._prefix}{app_id}/{member}".encode()

    async def _connect(self) -> None:
        self._client, self._server = await registry_client(self._etcd)

    async def _register(self, app_id: str, member: str) -> None:
        if self._lease is not None:
            reply = await self._lease.refresh()
            if reply is not None and reply.TTL > 0:
                return
        # First registration, or the lease ended while etcd was away: grant a new one.
        lease = await self._client.lease(self._lease_ttl)
        await self._client.put(self._key(app_id, member), member.encode(), lease=lease)
        self._lease = lease  # only once the key is on it: a failed put is tried again next time

    async def _live(self, app_id: str) -> list[str]:
        found = await self._client.get_prefix(self._key(app_id))
        return [kv.value.decode() for kv in found]

    async def _deregister(self, app_id: str, member: str) -> None:
        if self._lease is not None:
            lease, self._lease = self._lease, None
            await lease.revoke()  # etcd deletes the key with it

    async def _disconnect(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
