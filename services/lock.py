"""The distributed lock building block: Dapr's try-lock and unlock (dapr-http-api.md section 9), and
the renewal Layotto only stubbed, over the lock stores of components/lock.

Requests are validated in Dapr's order (expiry, stores configured, resource id, owner, store name);
the resource id becomes the storage key ``lock||<prefix>||<resource>`` (``keyPrefix`` metadata:
``appid`` by default, ``name``, ``none`` or a literal), as Dapr builds it, so l8 and daprd sidecars
sharing a Redis exclude each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from components.errors import ComponentError
from components.key_prefix import SEPARATOR, KeyPrefix
from components.loaded import LoadedComponent
from components.lock.base import LockStatus, LockStore, RenewRequest, TryLockRequest, UnlockRequest
from mesh.resiliency import NO_POLICY, Outbound, OutboundFor, no_policy
from services import errors, protojson


def api_key(api: str, keys: KeyPrefix, key: str) -> str:
    """``<api>||<prefix>||<key>`` (``key`` alone with the ``none`` strategy), as Dapr names lock keys."""
    return f"{api}{SEPARATOR}{keys.prefix}{key}" if keys.prefix else key


@dataclass(slots=True, frozen=True)
class LockStoreHandle:
    name: str
    store: LockStore
    keys: KeyPrefix
    outbound: Outbound = NO_POLICY
    """Acquisition and release are not resent after a lost reply: a resent acquisition would
    find the caller's own lock and answer that it is held."""

    def storage_key(self, resource_id: str) -> str:
        return api_key("lock", self.keys, resource_id)


class LockService:
    def __init__(self, stores: Mapping[str, LockStoreHandle]) -> None:
        self._stores = dict(stores)

    @classmethod
    def from_components(
        cls, components: Iterable[LoadedComponent], app_id: str, outbound: OutboundFor = no_policy
    ) -> LockService:
        return cls(
            {
                c.name: LockStoreHandle(c.name, c.instance, c.key_prefix(app_id), outbound(c))
                for c in components
            }
        )

    @property
    def names(self) -> list[str]:
        return list(self._stores)

    def _resolve(self, name: str, resource_id: str, owner: str) -> LockStoreHandle:
        if not self._stores:
            raise errors.lock_store_not_configured()
        if not resource_id:
            raise errors.lock_resource_empty(name)
        if not owner:
            raise errors.lock_owner_empty(name)
        handle = self._stores.get(name)
        if handle is None:
            raise errors.lock_store_not_found(name)
        return handle

    def _expiring(self, name: str, body: Any) -> tuple[LockStoreHandle, str, str, int]:
        fields = protojson.message(body)
        resource_id = protojson.string(fields, "resourceId")
        owner = protojson.string(fields, "lockOwner")
        expiry = protojson.integer(fields, "expiryInSeconds")
        if expiry <= 0:
            raise errors.lock_expiry_not_positive(name)
        handle = self._resolve(name, resource_id, owner)
        return handle, resource_id, owner, expiry

    async def try_lock(self, name: str, body: Any) -> bool:
        handle, resource_id, owner, expiry = self._expiring(name, body)
        if SEPARATOR in resource_id:
            raise errors.try_lock_failed(f"input key/keyPrefix '{resource_id}' can't contain '{SEPARATOR}'")
        request = TryLockRequest(handle.storage_key(resource_id), owner, expiry)
        try:
            return await handle.outbound.call_non_idempotent(handle.store.try_lock, request)
        except ComponentError as exc:
            raise errors.try_lock_failed(exc) from exc

    async def unlock(self, name: str, body: Any) -> LockStatus:
        fields = protojson.message(body)
        resource_id = protojson.string(fields, "resourceId")
        owner = protojson.string(fields, "lockOwner")
        handle = self._resolve(name, resource_id, owner)
        if SEPARATOR in resource_id:
            raise errors.unlock_failed(f"input key/keyPrefix '{resource_id}' can't contain '{SEPARATOR}'")
        try:
            request = UnlockRequest(handle.storage_key(resource_id), owner)
            return await handle.outbound.call_non_idempotent(handle.store.unlock, request)
        except ComponentError as exc:
            raise errors.unlock_failed(exc) from exc

    async def renew(self, name: str, body: Any) -> LockStatus:
        """Only the owner extends its lock: another owner's answers LOCK_BELONGS_TO_OTHERS, an
        expired or released one LOCK_DOES_NOT_EXIST."""
        handle, resource_id, owner, expiry = self._expiring(name, body)
        if SEPARATOR in resource_id:
            raise errors.renew_lock_failed(f"input key/keyPrefix '{resource_id}' can't contain '{SEPARATOR}'")
        request = RenewRequest(handle.storage_key(resource_id), owner, expiry)
        try:
            return await handle.outbound.call(handle.store.renew, request)
        except ComponentError as exc:
            raise errors.renew_lock_failed(exc) from exc
