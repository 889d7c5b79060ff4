"""Component types and the classes that implement them, imported only when a component uses them.

Adding a backend is one module plus one line here.
"""

from __future__ import annotations

import importlib
from typing import Any

# type -> "module:Class". Versions other than v1 do not exist yet.
COMPONENT_TYPES: dict[str, str] = {
    "state.in-memory": "components.state.in_memory:InMemoryStateStore",
    "state.sqlite": "components.state.sqlite:SQLiteStateStore",
    "state.redis": "components.state.redis:RedisStateStore",
    "pubsub.in-memory": "components.pubsub.in_memory:InMemoryPubSub",
    "pubsub.redis": "components.pubsub.redis:RedisPubSub",
    "pubsub.kafka": "components.pubsub.kafka:KafkaPubSub",
    "lock.in-memory": "components.lock.in_memory:InMemoryLockStore",
    "lock.redis": "components.lock.redis:RedisLockStore",
    "lock.etcd": "components.lock.etcd:EtcdLockStore",
    "sequencer.in-memory": "components.sequencer.in_memory:InMemorySequencer",
    "sequencer.sqlite": "components.sequencer.sqlite:SQLiteSequencer",
    "sequencer.redis": "components.sequencer.redis:RedisSequencer",
    "sequencer.etcd": "components.sequencer.etcd:EtcdSequencer",
    "configuration.in-memory": "components.configuration.in_memory:InMemoryConfigurationStore",
    "configuration.file": "components.configuration.file:FileConfigurationStore",
    "configuration.redis": "components.configuration.redis:RedisConfigurationStore",
    "configuration.etcd": "components.configuration.etcd:EtcdConfigurationStore",
}

SUPPORTED_VERSIONS = ("v1", "")


class UnknownComponentType(LookupError):
    pass


def category(component_type: str) -> str:
    """The building block of a component type: ``state.redis`` -> ``state``."""
    return component_type.split(".", 1)[0]


def create(component_type: str, version: str = "v1") -> Any:
    """A new, uninitialised instance of the class behind ``component_type``."""
    target = COMPONENT_TYPES.get(component_type)
    if target is None:
        known = ", ".join(sorted(COMPONENT_TYPES))
        raise UnknownComponentType(f"unknown component type {component_type!r} (known: {known})")
    if version not in SUPPORTED_VERSIONS:
        raise UnknownComponentType(f"component type {component_type!r} has no version {version!r}")
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)()
