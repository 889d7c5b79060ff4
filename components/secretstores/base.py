"""The secret store contract (Dapr's secrets API, dapr-http-api.md section 7).

A secret is a *name* mapping to one or more key/value pairs: a single-valued store answers
``{name: value}``, a multi-valued one (``local.file`` with ``multiValued``, a Redis hash) any
number of keys. Names reach the store exactly as the caller gave them: no key prefix, no
``||`` rules; access policy (Configuration ``spec.secrets.scopes``) is the runtime's, not the
store's.

Edge cases every backend honours (tests/conformance/test_secretstore_conformance.py proves them):

* ``get`` of a name the store does not hold raises :class:`SecretNotFoundError` (Dapr answers it
  as ERR_SECRET_GET 500); a store that has "no data" for a found name returns ``None`` (204).
  ``local.env`` is Dapr's exception: an unset variable is ``{name: ""}``, as daprd answers.
* ``bulk_get`` returns every secret the store holds, each as its key/value map; an empty store
  returns ``{}``.
* Values are strings: numbers and booleans in a source are rendered as their JSON text.
* ``metadata`` is the request's ``metadata.*`` query parameters; a store ignores keys it does not
  know.
* A store failing (server away, timeout) raises :class:`~components.errors.BackendError`.
* Secret *values* never appear in an exception message or a log line; names may.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Protocol

from components.errors import NotFoundError


class Feature(enum.StrEnum):
    """Optional capabilities, reported in GET /v1.0/metadata (Dapr's names)."""

    MULTIPLE_KEY_VALUES_PER_SECRET = "MULTIPLE_KEY_VALUES_PER_SECRET"


class SecretNotFoundError(NotFoundError):
    """The store holds no secret of that name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"secret {name} not found")
        self.name = name


class SecretStore(Protocol):
    async def init(self, metadata: Mapping[str, str]) -> None:
        """Decode the component metadata (raising MetadataError naming the field) and load or
        connect (raising ComponentInitError when the source cannot be used)."""

    def features(self) -> frozenset[Feature]: ...

    async def get(self, name: str, metadata: Mapping[str, str]) -> dict[str, str] | None:
        """The key/value pairs of secret ``name``."""

    async def bulk_get(self, metadata: Mapping[str, str]) -> dict[str, dict[str, str]]:
        """Every secret of the store, name -> its key/value pairs."""

    async def close(self) -> None:
        """Release connections; called once, also after a failed init."""
