"""Name resolution through etcd: every sidecar puts its address under its app id with an etcd lease,
the callers list the live ones (``name_resolution: {type: etcd, endpoints: [host:port, ...]}``).

A sidecar's registration is the key ``<keyPrefix><app-id>/<host:port>`` (``keyPrefix`` defaults to
``l8/nr/``), attached to a lease of ``ttl`` whole seconds (etcd grants at least 2): etcd itself
deletes the key when the lease is not kept alive, so a sidecar that dies drops out within its ttl,
and a graceful stop revokes the lease at once. A lease that lapsed while etcd was unreachable is
granted anew at the next renewal. Settings: ``endpoints`` (the first that answers is used),
``username``/``password``, ``dialTimeout``, ``keyPrefix``, and the registry ones (mesh/registry.py):
``ttl``, ``cacheSeconds``, ``advertiseAddress``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from components.etcd_connection import first_answering
from mesh.errors import SettingsError
from mesh.registry import LeasedRegistry, host_port, seconds_setting


class EtcdRegistry(LeasedRegistry):
    kind = "etcd"
    server_field = "endpoints"

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        endpoints = config.get("endpoints")
        if isinstance(endpoints, str):
            endpoints = [part for part in endpoints.split(",") if part.strip()]
        if not isinstance(endpoints, list) or not endpoints:
            raise SettingsError("name_resolution.endpoints: give etcd's client address(es) as host:port")
        what = "etcd's client address"
        self._endpoints = [host_port({"endpoints": e}, "endpoints", what) for e in endpoints]
        self._username = config.get("username") or None
        self._password = config.get("password") or None
        self._dial_timeout = seconds_setting(config, "dialTimeout", 3.0)
        self._prefix = str(config.get("keyPrefix", "l8/nr/"))
        self._lease_ttl = max(1, math.ceil(self.ttl))
        self._client: Any = None
        self._server = ",".join(f"{host}:{port}" for host, port in self._endpoints)
        self._lease: Any = None

    @property
    def server(self) -> str:
        return self._server

    def _key(self, app_id: str, member: str = "") -> bytes:
        return f"{self._prefix}{app_id}/{member}".encode()

    async def _connect(self) -> None:
        try:
            self._client, self._server = await first_answering(
                self._endpoints, self._username, self._password, self._dial_timeout
            )
        except ConnectionError as exc:
            raise SettingsError(f"name_resolution.endpoints: {exc}") from None

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
