"""The placement the ``name_resolution`` settings imply: the sidecars that find each other through a
Redis or an etcd place actors through it too; ``static`` (one sidecar alone) places them here."""

from __future__ import annotations

from mesh.etcd_registry import EtcdRegistrySettings
from mesh.name_resolution import NameResolution
from mesh.placement.base import Placement
from mesh.placement.local import LocalPlacement
from mesh.redis_registry import RedisRegistrySettings


def build_placement(settings: NameResolution) -> Placement:
    """Placement over the ``name_resolution`` server; it connects when the runtime starts it."""
    if isinstance(settings, RedisRegistrySettings):
        from mesh.placement.redis import RedisPlacement

        return RedisPlacement(settings)
    if isinstance(settings, EtcdRegistrySettings):
        from mesh.placement.etcd import EtcdPlacement

        return EtcdPlacement(settings)
    return LocalPlacement()
