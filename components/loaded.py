"""The started components of a sidecar, by building block and by the name users gave them.

The registry (components/registry.py) knows types; this is what the runtime made of a resources
folder: each component's instance with the metadata and file it came from, so a building block's
factory can read its own settings from it and name the file and component in any error."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from components.errors import MetadataError
from components.key_prefix import KeyPrefix
from components.metadata import lookup
from components.registry import category
from components.resources import ResourceError


@dataclass(slots=True, frozen=True)
class LoadedComponent:
    name: str
    type: str
    version: str
    instance: Any
    metadata: dict[str, str]
    source: str

    @property
    def category(self) -> str:
        return category(self.type)

    def setting(self, name: str) -> str | None:
        """A metadata value by its name, matched case-insensitively as Dapr's decoder does."""
        return lookup(self.metadata, name)

    def error(self, message: str, field: str | None = None) -> ResourceError:
        """A start-up error naming this component's file, the component and the field."""
        return ResourceError(self.source, message, self.name, field)

    def key_prefix(self, app_id: str) -> KeyPrefix:
        """The ``keyPrefix`` strategy of a store whose keys Dapr prefixes (state, lock, sequencer)."""
        try:
            return KeyPrefix.from_metadata(self.setting("keyPrefix"), app_id=app_id, store_name=self.name)
        except MetadataError as exc:
            raise self.error(exc.message, exc.field) from None


class ComponentStore:
    def __init__(self) -> None:
        self._by_category: dict[str, dict[str, LoadedComponent]] = {}

    def add(self, component: LoadedComponent) -> None:
        self._by_category.setdefault(component.category, {})[component.name] = component

    def of(self, block: str) -> dict[str, LoadedComponent]:
        """The components of one building block (``state``, ``pubsub``...), by name."""
        return self._by_category.get(block, {})

    def __iter__(self) -> Iterator[LoadedComponent]:
        for components in self._by_category.values():
            yield from components.values()

    def __len__(self) -> int:
        return sum(len(components) for components in self._by_category.values())
