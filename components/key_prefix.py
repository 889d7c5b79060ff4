"""Dapr's key prefix strategies: how a user's key becomes the storage key, shared by the state,
lock and sequencer building blocks.

Stored key = ``<prefix>||<key>`` where the component metadata ``keyPrefix`` picks the prefix:
``appid`` (default), ``name`` (the component name), ``namespace`` (``$NAMESPACE.<appid>``),
``none`` (the key unchanged) or any other string, lower-cased as Dapr does. Sharing one Redis with real Dapr
sidecars works because the scheme is the same.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from components.errors import MetadataError

SEPARATOR = "||"


@dataclass(slots=True, frozen=True)
class KeyPrefix:
    prefix: str
    """Everything put before the user's key, separator included ("" for none)."""

    @classmethod
    def from_metadata(cls, strategy: str | None, *, app_id: str, store_name: str) -> KeyPrefix:
        choice = (strategy or "appid").strip()
        lowered = choice.lower()
        if lowered == "appid":
            base = app_id
        elif lowered == "name":
            base = store_name
        elif lowered == "none":
            base = ""
        elif lowered == "namespace":
            namespace = os.environ.get("NAMESPACE", "")
            base = f"{namespace}.{app_id}" if namespace and app_id else app_id
        else:
            if SEPARATOR in choice:
                raise MetadataError("keyPrefix", f"a custom prefix can't contain {SEPARATOR!r}")
            base = lowered  # Dapr lower-cases the value, and sharing a database with it needs the same keys
        return cls(f"{base}{SEPARATOR}" if base else "")

    def storage_key(self, key: str) -> str:
        return self.prefix + key if self.prefix else key

    def user_key(self, storage_key: str) -> str:
        if self.prefix and storage_key.startswith(self.prefix):
            return storage_key[len(self.prefix) :]
        return storage_key
