"""The configuration store contract: Dapr's read and subscribe side, and Layotto's write side
(SaveConfiguration / DeleteConfiguration).

An item is identified by ``(group, label, key)``, as in Layotto; Dapr's API, which has neither, reads
and writes the store's default group and label (``default``/``default``; the runtime fills in the
default for a blank or whitespace-only group or label before a request reaches a store). Keys are
not prefixed: a configuration store is shared as-is by whoever is given it (apps, operators writing
directly into Redis or etcd).

Edge cases every backend honours (tests/conformance/test_configuration_conformance.py proves them):

* ``get`` with no keys answers every item of the group and label; with keys, the items that exist
  (a missing key is simply absent, not an error).
* ``save`` writes every item (creating or replacing it) and gives each a new ``version``, an opaque
  string that differs from every earlier version of that item; a save of an unchanged item still
  counts as a change. ``delete`` removes the keys given (missing ones are ignored).
* ``subscribe`` calls its handler for every change of a subscribed key (no keys: every key of the
  group and label) made after ``subscribe`` returned, by this process, another l8 process or
  directly in the backend: exactly once per change the store can observe, one call at a time, in
  the order the store applied the changes. A deleted item arrives with ``deleted=True`` and an empty
  value. Closing the subscription stops the calls; a handler that raises is logged by the store and
  the subscription goes on.
* A store failing raises :class:`~components.errors.BackendError`.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

DEFAULT_GROUP = "default"
DEFAULT_LABEL = "default"
_NONE: Mapping[str, str] = {}


class Feature(enum.StrEnum):
    """Optional capabilities, reported in GET /v1.0/metadata."""


@dataclass(slots=True, frozen=True)
class ConfigurationItem:
    key: str
    value: str = ""
    """Layotto's ``content``."""
    version: str = ""
    metadata: Mapping[str, str] = field(default_factory=lambda: _NONE)
    group: str = DEFAULT_GROUP
    label: str = DEFAULT_LABEL
    tags: Mapping[str, str] = field(default_factory=lambda: _NONE)
    deleted: bool = False
    """Only in change events: the item was removed."""


@dataclass(slots=True, frozen=True)
class GetRequest:
    keys: Sequence[str] = ()
    """Empty: every item of the group and label."""
    group: str = DEFAULT_GROUP
    label: str = DEFAULT_LABEL
    metadata: Mapping[str, str] = field(default_factory=lambda: _NONE)


SubscribeRequest = GetRequest


@dataclass(slots=True, frozen=True)
class SaveRequest:
    items: Sequence[ConfigurationItem]
    """Each with its own group and label; ``version`` and ``deleted`` are ignored."""
    metadata: Mapping[str, str] = field(default_factory=lambda: _NONE)


@dataclass(slots=True, frozen=True)
class DeleteRequest:
    keys: Sequence[str]
    group: str = DEFAULT_GROUP
    label: str = DEFAULT_LABEL
    metadata: Mapping[str, str] = field(default_factory=lambda: _NONE)


ChangeHandler = Callable[[list[ConfigurationItem]], Awaitable[None]]
"""Called with the items one change touched (usually one; several for a multi-item save)."""


class Subscription(Protocol):
    async def close(self) -> None:
        """Stop the handler calls; returns once none is running. Idempotent."""


class ConfigurationStore(Protocol):
    async def init(self, metadata: Mapping[str, str]) -> None:
        """Decode the component metadata (raising MetadataError naming the field) and connect
        (raising ComponentInitError when the backend cannot be used)."""

    def features(self) -> frozenset[Feature]: ...

    async def get(self, request: GetRequest) -> list[ConfigurationItem]: ...

    async def subscribe(self, request: SubscribeRequest, handler: ChangeHandler) -> Subscription:
        """Returns once the store is watching: every later change reaches ``handler``."""

    async def save(self, request: SaveRequest) -> None: ...

    async def delete(self, request: DeleteRequest) -> None: ...

    async def close(self) -> None:
        """Close every subscription and release every resource. Idempotent."""
