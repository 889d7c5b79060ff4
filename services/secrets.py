"""The secrets building block: Dapr's ``GET /v1.0/secrets/{store}/{key}`` and ``.../bulk``
(dapr-http-api.md section 7), over the secret stores of components/secretstores.

Requests are checked in daprd's order: any store configured (else 500
ERR_SECRET_STORES_NOT_CONFIGURED), the store known (else 401 ERR_SECRET_STORE_NOT_FOUND, daprd's
status), the name allowed by the scopes (else 403 ERR_PERMISSION_DENIED), then the store's call
under its outbound Resiliency policy (a failure, "not found" included, is 500 ERR_SECRET_GET).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from components.errors import ComponentError
from components.loaded import LoadedComponent
from components.secretstores.base import SecretStore
from mesh.resiliency import NO_POLICY, Outbound, OutboundFor, no_policy
from services import errors
from services.secret_scopes import SecretScopes


@dataclass(slots=True, frozen=True)
class SecretStoreHandle:
    name: str
    store: SecretStore
    outbound: Outbound = NO_POLICY


class SecretsService:
    def __init__(self, stores: Mapping[str, SecretStoreHandle], scopes: SecretScopes | None = None) -> None:
        self._stores = dict(stores)
        self._scopes = scopes or SecretScopes()

    @classmethod
    def from_components(
        cls,
        components: Iterable[LoadedComponent],
        scopes: SecretScopes | None = None,
        outbound: OutboundFor = no_policy,
    ) -> SecretsService:
        return cls({c.name: SecretStoreHandle(c.name, c.instance, outbound(c)) for c in components}, scopes)

    @property
    def names(self) -> list[str]:
        return list(self._stores)

    def _store(self, name: str) -> SecretStoreHandle:
        if not self._stores:
            raise errors.secret_stores_not_configured()
        handle = self._stores.get(name)
        if handle is None:
            raise errors.secret_store_not_found(name)
        return handle

    async def get(self, store: str, name: str, metadata: Mapping[str, str]) -> dict[str, str] | None:
        """The secret's key/value pairs; None when the store has no data for it (a 204)."""
        handle = self._store(store)
        if not self._scopes.allows(store, name):
            raise errors.secret_permission_denied(name, store)
        try:
            return await handle.outbound.call(handle.store.get, name, metadata)
        except ComponentError as exc:
            raise errors.secret_get_failed(name, store, exc) from exc

    async def bulk_get(self, store: str, metadata: Mapping[str, str]) -> dict[str, dict[str, str]]:
        """Every secret of the store the scopes allow; the others are left out silently."""
        handle = self._store(store)
        try:
            secrets = await handle.outbound.call(handle.store.bulk_get, metadata)
        except ComponentError as exc:
            raise errors.bulk_secret_get_failed(store, exc) from exc
        if not self._scopes:
            return secrets
        return {name: value for name, value in secrets.items() if self._scopes.allows(store, name)}
