"""The live components of this sidecar, by building block and by the name users gave them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from components.registry import category


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
