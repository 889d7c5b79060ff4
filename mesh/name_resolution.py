"""The resolver the ``name_resolution`` settings describe: ``type: static`` (mesh/resolver.py, the
default), ``redis`` (mesh/redis_registry.py) or ``etcd`` (mesh/etcd_registry.py). Each type has its
settings model; this module picks it by ``type`` and builds the resolver from it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesh.errors import SettingsError
from mesh.etcd_registry import EtcdRegistry, EtcdRegistrySettings
from mesh.redis_registry import RedisRegistry, RedisRegistrySettings
from mesh.resolver import Resolver, StaticResolver, StaticResolverSettings
from mesh.settings import parse_settings

NameResolution = StaticResolverSettings | RedisRegistrySettings | EtcdRegistrySettings
_BY_TYPE: dict[str, type[NameResolution]] = {
    "static": StaticResolverSettings,
    "redis": RedisRegistrySettings,
    "etcd": EtcdRegistrySettings,
}


def parse_name_resolution(raw: Any) -> NameResolution:
    """The settings of the resolver ``raw`` names by its ``type`` (static when absent)."""
    if isinstance(raw, StaticResolverSettings | RedisRegistrySettings | EtcdRegistrySettings):
        return raw
    if raw is not None and not isinstance(raw, Mapping):
        raise SettingsError("name_resolution: a mapping (type, and what that type needs)")
    kind = (raw or {}).get("type", "static")
    model = _BY_TYPE.get(kind) if isinstance(kind, str) else None
    if model is None:
        known = ", ".join(_BY_TYPE)
        raise SettingsError(f"name_resolution.type: unknown resolver {kind!r} (known: {known})")
    return parse_settings(model, raw, "name_resolution")


def build_resolver(settings: NameResolution) -> Resolver:
    """The resolver of the ``name_resolution`` settings; it starts with the runtime."""
    if isinstance(settings, RedisRegistrySettings):
        return RedisRegistry(settings)
    if isinstance(settings, EtcdRegistrySettings):
        return EtcdRegistry(settings)
    return StaticResolver(settings.apps)
