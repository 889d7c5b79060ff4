"""Placement for one sidecar alone (``name_resolution: {type: static}``, the default): every actor
of a type this sidecar hosts is here, of any other type nowhere. No store, no lease, no I/O: a
claim is a set entry, and the table changes only when :meth:`host` names other types."""

from __future__ import annotations

from typing import Any

from mesh.placement.base import ChangeListener
from mesh.placement.listeners import run_listeners


class LocalPlacement:
    kind = "local"

    def __init__(self) -> None:
        self.address = ""
        self._types: frozenset[str] = frozenset()
        self._claims: set[tuple[str, str]] = set()
        self._changed: list[ChangeListener] = []

    async def start(self, app_id: str, address: str) -> None:
        self.address = address

    async def host(self, types: frozenset[str]) -> None:
        if types == self._types:
            return
        self._types = types
        await run_listeners(self._changed, "placement change")

    async def lookup(self, actor_type: str, actor_id: str) -> str | None:
        return self.address if actor_type in self._types else None

    async def claim(self, actor_type: str, actor_id: str) -> bool:
        if actor_type not in self._types:
            return False
        self._claims.add((actor_type, actor_id))
        return True

    async def release(self, actor_type: str, actor_id: str) -> None:
        self._claims.discard((actor_type, actor_id))

    def on_change(self, listener: ChangeListener) -> None:
        self._changed.append(listener)

    def on_fenced(self, listener: ChangeListener) -> None:
        """Never runs: there is no lease to lose."""

    def status(self) -> str:
        """The one line of ``actorRuntime.placement`` in the metadata API, in Dapr's words: always
        connected (``describe()``'s ``kind`` says it is local)."""
        return "placement: connected"

    def describe(self) -> dict[str, Any]:
        types = sorted(self._types)
        return {
            "kind": self.kind,
            "server": None,
            "address": self.address,
            "status": self.status(),
            "hostedTypes": types,
            "members": {actor_type: [self.address] for actor_type in types},
            "claims": len(self._claims),
        }

    async def aclose(self) -> None:
        self._types = frozenset()
        self._claims.clear()
