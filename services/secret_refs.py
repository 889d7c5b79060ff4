"""``secretKeyRef``: metadata values read from a secret store before a component (or an
``HTTPEndpoint``) starts, as daprd resolves them.

The store is the resource's ``auth.secretStore``; without one, the only secret store loaded (with
several, the resource must name one; daprd's default outside Kubernetes is none). A reference
that cannot be resolved fails start-up naming the file, the resource, the field, the store and the
secret's name, never its value: an unknown store, a store failing, a missing secret, or a secret
without the key asked for (daprd leaves such a field empty; l8 refuses to start a component on a
credential it did not get).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from components.errors import ComponentError
from components.resources import ResourceError
from components.secretstores.base import SecretStore


class SecretRefs:
    """Resolves references against the secret stores started so far."""

    def __init__(self, store_names: Iterable[str], timeout: float | None = None) -> None:
        self.declared = list(store_names)
        """Every secret store of the resources (started or not), for the default-store rule."""
        self.stores: dict[str, SecretStore] = {}
        self.timeout = timeout
        self.values: set[str] = set()
        """Every value handed out, so start-up errors can be scrubbed of them."""

    def store_for(self, auth_store: str, resource: str) -> str | None:
        """The store a resource's references read: its ``auth.secretStore``, else the only one
        declared (a secret store never defaults to itself); None when that cannot be decided."""
        if auth_store:
            return auth_store
        candidates = [name for name in self.declared if name != resource]
        return candidates[0] if len(candidates) == 1 else None

    async def value(
        self, auth_store: str, name: str, key: str, *, source: str, resource: str, field: str
    ) -> str:
        def fail(message: str) -> ResourceError:
            return ResourceError(source, f"secretKeyRef: {message}", resource, field)

        store_name = self.store_for(auth_store, resource)
        if store_name is None:
            if not [n for n in self.declared if n != resource]:
                raise fail("no secret store is loaded")
            raise fail("several secret stores are loaded: name one in auth.secretStore")
        store = self.stores.get(store_name)
        if store is None:
            raise fail(f"secret store {store_name!r} is not loaded (auth.secretStore)")
        try:
            secret = await asyncio.wait_for(store.get(name, {}), timeout=self.timeout)
        except ComponentError as exc:
            raise fail(f"cannot read secret {name!r} from {store_name!r}: {exc}") from None
        except TimeoutError:
            raise fail(f"secret store {store_name!r} did not answer within {self.timeout:g}s") from None
        if not secret or key not in secret:
            raise fail(f"secret {name!r} in {store_name!r} has no key {key!r}")
        value = secret[key]
        if value:
            self.values.add(value)
        return value

    def scrub(self, text: str) -> str:
        """``text`` with every secret value handed out replaced by ``***``."""
        for value in sorted(self.values, key=len, reverse=True):
            if len(value) >= 3:
                text = text.replace(value, "***")
        return text

    def ready(self, auth_store: str, resource: str) -> bool:
        """Whether the store a resource's references need has started (or cannot ever)."""
        store_name = self.store_for(auth_store, resource)
        return store_name is None or store_name in self.stores or store_name not in self.declared
