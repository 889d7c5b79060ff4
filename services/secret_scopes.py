"""Which secrets the app may read: Configuration ``spec.secrets.scopes`` (Dapr's secret scoping).

```yaml
spec:
  secrets:
    scopes:
      - storeName: vault
        defaultAccess: deny          # allow (the default) or deny, any case
        allowedSecrets: ["db-password"]
        deniedSecrets: []
```

Dapr's rule, per store: with ``allowedSecrets`` given, exactly those names are readable; otherwise
a name in ``deniedSecrets`` is refused and any other follows ``defaultAccess``. A store with no
scope entry is open. The rule applies to the secrets API only (a denied single read is 403, a bulk
read silently drops what is denied); ``secretKeyRef`` in component files is the operator's and is
not scoped, as in daprd.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from components.resources import ResourceError


@dataclass(slots=True, frozen=True)
class SecretScope:
    default_allow: bool = True
    allowed: frozenset[str] = frozenset()
    denied: frozenset[str] = frozenset()

    def allows(self, name: str) -> bool:
        if self.allowed:
            return name in self.allowed
        if name in self.denied:
            return False
        return self.default_allow


class SecretScopes:
    def __init__(self, scopes: Mapping[str, SecretScope] | None = None) -> None:
        self._scopes = dict(scopes or {})

    def allows(self, store: str, name: str) -> bool:
        scope = self._scopes.get(store)
        return scope is None or scope.allows(name)

    def __bool__(self) -> bool:
        return bool(self._scopes)

    @classmethod
    def from_configurations(cls, configurations: Iterable[tuple[Mapping[str, Any], str]]) -> SecretScopes:
        """The scopes of every Configuration ``spec`` given as ``(spec, source)``; a later entry for
        the same store replaces an earlier one. Raises ResourceError naming the field."""
        scopes: dict[str, SecretScope] = {}
        for spec, source in configurations:
            secrets = spec.get("secrets")
            if secrets is None:
                continue
            if not isinstance(secrets, Mapping):
                raise ResourceError(source, "must be a mapping with scopes", field="spec.secrets")
            entries = secrets.get("scopes") or []
            if not isinstance(entries, list):
                raise ResourceError(source, "must be a list", field="spec.secrets.scopes")
            for index, entry in enumerate(entries):
                where = f"spec.secrets.scopes[{index}]"
                name, scope = _scope(entry, source, where)
                scopes[name] = scope
        return cls(scopes)


def _scope(entry: Any, source: str, where: str) -> tuple[str, SecretScope]:
    if not isinstance(entry, Mapping):
        raise ResourceError(source, "must be a mapping with storeName", field=where)
    store = entry.get("storeName")
    if not isinstance(store, str) or not store:
        raise ResourceError(source, "storeName is required", field=f"{where}.storeName")
    access = str(entry.get("defaultAccess") or "allow").lower()
    if access not in ("allow", "deny"):
        raise ResourceError(source, f"{access!r} is not allow or deny", field=f"{where}.defaultAccess")

    def names(field: str) -> frozenset[str]:
        value = entry.get(field) or []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ResourceError(source, "must be a list of secret names", field=f"{where}.{field}")
        return frozenset(value)

    return store, SecretScope(access == "allow", names("allowedSecrets"), names("deniedSecrets"))
