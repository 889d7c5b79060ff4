"""Component types and the classes that implement them, imported only when a component uses them.

Each building block has one typed registry (``STATE`` is a ``Registry[StateStore]``...) mapping a
type to ``"module:Class"``: a sidecar imports only the backends it runs, and what a registry hands
out is typed as its block's contract. Adding a backend is one module plus one line here.

Other packages add types through the entry-point group ``l8.components``
(``state.mystore = mypkg.store:MyStore``). The group is read once, the first time a type is not
among the built-in ones (or every type is listed), never at import; a built-in type always wins.
Every class, built-in or not, is checked against its block's contract when first loaded, so a
plug-in missing an operation fails start-up naming what is missing, not a request later.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Collection, Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

import structlog

if TYPE_CHECKING:
    from components.bindings.base import Binding
    from components.configuration.base import ConfigurationStore
    from components.files.base import FileStore
    from components.lock.base import LockStore
    from components.pubsub.base import PubSub
    from components.secretstores.base import SecretStore
    from components.sequencer.base import Sequencer
    from components.state.base import StateStore

log = structlog.get_logger(__name__)

ENTRY_POINT_GROUP = "l8.components"
SUPPORTED_VERSIONS = ("v1", "")


class UnknownComponentType(LookupError):
    pass


class BrokenComponentType(UnknownComponentType):
    """The type is known but its class cannot be imported or does not meet its block's contract."""


class Component(Protocol):
    """What every block's contract shares: what the runtime starts and stops."""

    async def init(self, metadata: Mapping[str, str]) -> None: ...

    def features(self) -> Collection[Any]: ...

    async def close(self) -> None: ...


C_co = TypeVar("C_co", bound=Component, covariant=True)


def category(component_type: str) -> str:
    """The building block of a component type: ``state.redis`` -> ``state``."""
    return component_type.split(".", 1)[0]


class Registry(Generic[C_co]):
    """The component types of one building block, each a class meeting ``contract``."""

    def __init__(self, block: str, contract: str, types: Mapping[str, str]) -> None:
        self.block = block
        self.contract_target = contract
        """The contract as ``module:Protocol``."""
        self.builtin: Mapping[str, str] = dict(types)
        self._classes: dict[str, type[C_co]] = {}

    @property
    def contract(self) -> type:
        """The block's Protocol (imported on first use: the registry itself imports no block)."""
        return cast(type, _import(self.contract_target))

    def types(self) -> dict[str, str]:
        """Every type of this block, built-in and from entry points, with its ``module:Class``."""
        plugins = {name: target for name, target in plugin_types().items() if category(name) == self.block}
        return {**self.builtin, **plugins}

    def load(self, component_type: str) -> type[C_co]:
        """The class behind ``component_type``, imported and checked against the contract once."""
        found = self._classes.get(component_type)
        if found is not None:
            return found
        target = self.builtin.get(component_type)
        if target is None and category(component_type) == self.block:
            target = plugin_types().get(component_type)
        if target is None:
            raise _unknown(component_type)
        try:
            cls = _import(target)
        except Exception as exc:  # a plug-in's module can fail any way: start-up says so in one line
            raise BrokenComponentType(
                f"component type {component_type!r}: cannot load {target}: {exc}"
            ) from None
        problems = contract_problems(cls, self.contract) if isinstance(cls, type) else ["not a class"]
        if problems:
            raise BrokenComponentType(
                f"component type {component_type!r} ({target}) does not meet the {self.block} "
                f"contract: {'; '.join(problems)}"
            )
        self._classes[component_type] = cls
        return cast(type[C_co], cls)

    def create(self, component_type: str, version: str = "v1") -> C_co:
        """A new, uninitialised instance of the class behind ``component_type``."""
        cls = self.load(component_type)
        if version not in SUPPORTED_VERSIONS:
            raise UnknownComponentType(f"component type {component_type!r} has no version {version!r}")
        return cls()


# Versions other than v1 do not exist yet.
STATE: Registry[StateStore] = Registry(
    "state",
    "components.state.base:StateStore",
    {
        "state.in-memory": "components.state.in_memory:InMemoryStateStore",
        "state.sqlite": "components.state.sqlite:SQLiteStateStore",
        "state.redis": "components.state.redis:RedisStateStore",
    },
)
PUBSUB: Registry[PubSub] = Registry(
    "pubsub",
    "components.pubsub.base:PubSub",
    {
        "pubsub.in-memory": "components.pubsub.in_memory:InMemoryPubSub",
        "pubsub.redis": "components.pubsub.redis:RedisPubSub",
        "pubsub.kafka": "components.pubsub.kafka:KafkaPubSub",
    },
)
LOCK: Registry[LockStore] = Registry(
    "lock",
    "components.lock.base:LockStore",
    {
        "lock.in-memory": "components.lock.in_memory:InMemoryLockStore",
        "lock.redis": "components.lock.redis:RedisLockStore",
        "lock.etcd": "components.lock.etcd:EtcdLockStore",
    },
)
SEQUENCER: Registry[Sequencer] = Registry(
    "sequencer",
    "components.sequencer.base:Sequencer",
    {
        "sequencer.in-memory": "components.sequencer.in_memory:InMemorySequencer",
        "sequencer.sqlite": "components.sequencer.sqlite:SQLiteSequencer",
        "sequencer.redis": "components.sequencer.redis:RedisSequencer",
        "sequencer.etcd": "components.sequencer.etcd:EtcdSequencer",
    },
)
CONFIGURATION: Registry[ConfigurationStore] = Registry(
    "configuration",
    "components.configuration.base:ConfigurationStore",
    {
        "configuration.in-memory": "components.configuration.in_memory:InMemoryConfigurationStore",
        "configuration.file": "components.configuration.file:FileConfigurationStore",
        "configuration.redis": "components.configuration.redis:RedisConfigurationStore",
        "configuration.etcd": "components.configuration.etcd:EtcdConfigurationStore",
    },
)

SECRETSTORES: Registry[SecretStore] = Registry(
    "secretstores",
    "components.secretstores.base:SecretStore",
    {
        "secretstores.local.file": "components.secretstores.local_file:LocalFileSecretStore",
        "secretstores.local.env": "components.secretstores.local_env:LocalEnvSecretStore",
        "secretstores.redis": "components.secretstores.redis:RedisSecretStore",
    },
)
# Layotto's file API: its types are named "file.<backend>" (Layotto's own component names).
FILES: Registry[FileStore] = Registry(
    "file",
    "components.files.base:FileStore",
    {
        "file.local": "components.files.local:LocalFileStore",
        "file.s3": "components.files.s3:S3FileStore",
    },
)
BINDINGS: Registry[Binding] = Registry(
    "bindings",
    "components.bindings.base:Binding",
    {
        "bindings.cron": "components.bindings.cron:CronBinding",
        "bindings.http": "components.bindings.http:HttpBinding",
        "bindings.localstorage": "components.bindings.localstorage:LocalStorageBinding",
        "bindings.redis": "components.bindings.redis:RedisBinding",
        "bindings.postgresql": "components.bindings.postgres:PostgresBinding",
        "bindings.postgres": "components.bindings.postgres:PostgresBinding",
        "bindings.kafka": "components.bindings.kafka:KafkaBinding",
        "bindings.aws.s3": "components.bindings.s3:S3Binding",
        "bindings.wasm": "wasm.wasi_binding:WasmBinding",
    },
)

REGISTRIES: Mapping[str, Registry[Component]] = {
    registry.block: registry
    for registry in (STATE, PUBSUB, LOCK, SEQUENCER, CONFIGURATION, SECRETSTORES, FILES, BINDINGS)
}


def registry_of(component_type: str) -> Registry[Component]:
    """The registry of the block ``component_type`` belongs to."""
    registry = REGISTRIES.get(category(component_type))
    if registry is None:
        raise _unknown(component_type)
    return registry


def create(component_type: str, version: str = "v1") -> Component:
    """A new, uninitialised instance of the class behind ``component_type``, of any block."""
    return registry_of(component_type).create(component_type, version)


def component_types() -> list[str]:
    """Every known type, built-in and from entry points, sorted."""
    return sorted(name for registry in REGISTRIES.values() for name in registry.types())


@functools.cache
def plugin_types() -> Mapping[str, str]:
    """The types other packages add (entry-point group ``l8.components``), read once."""
    found: dict[str, str] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        registry = REGISTRIES.get(category(entry.name))
        if registry is None:
            log.warning(
                "component entry point ignored: no such building block", type=entry.name, target=entry.value
            )
        elif entry.name in registry.builtin:
            log.warning(
                "component entry point ignored: a built-in type has that name",
                type=entry.name,
                target=entry.value,
            )
        elif entry.name in found:
            log.warning(
                "component entry point ignored: another package registered that type first",
                type=entry.name,
                target=entry.value,
                kept=found[entry.name],
            )
        else:
            found[entry.name] = entry.value
    return found


def contract_problems(cls: type, contract: type) -> list[str]:
    """What ``cls`` lacks to meet ``contract`` (a Protocol): each method present, async where the
    contract's is, and callable with the contract's arguments. Empty when it conforms."""
    problems = []
    for name, expected in _protocol_methods(contract).items():
        actual = inspect.getattr_static(cls, name, None)
        if actual is None or not callable(actual):
            problems.append(f"{name}() is missing")
            continue
        is_async = inspect.iscoroutinefunction(expected)
        if is_async != inspect.iscoroutinefunction(actual):
            problems.append(f"{name}() must be {'async' if is_async else 'a plain method, not async'}")
        mismatch = _signature_mismatch(expected, actual)
        if mismatch:
            problems.append(f"{name}() {mismatch}")
    return problems


def _protocol_methods(contract: type) -> dict[str, Any]:
    methods: dict[str, Any] = {}
    for klass in reversed(contract.__mro__):
        if getattr(klass, "_is_protocol", False) and klass is not Protocol:
            for name, member in vars(klass).items():
                if not name.startswith("_") and inspect.isfunction(member):
                    methods[name] = member
    return methods


def _signature_mismatch(expected: Any, actual: Any) -> str | None:
    """Whether ``actual`` accepts every call ``expected`` allows: its positional and keyword
    parameters, with no further required ones."""
    wanted = inspect.signature(expected)
    try:
        got = inspect.signature(actual)
    except (TypeError, ValueError):
        return None  # a builtin or C callable: nothing to read
    positional = [
        p for p in wanted.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    keywords = {p.name: None for p in wanted.parameters.values() if p.kind is p.KEYWORD_ONLY}
    try:
        got.bind(*[None] * len(positional), **keywords)
    except TypeError as exc:
        return f"does not take the contract's arguments {wanted}: {exc}"
    return None


def _import(target: str) -> Any:
    module_name, _, name = target.partition(":")
    if not name:
        raise ValueError(f"{target!r} is not 'module:Class'")
    value: Any = importlib.import_module(module_name)
    for part in name.split("."):
        value = getattr(value, part)
    return value


def _unknown(component_type: str) -> UnknownComponentType:
    known = ", ".join(component_types())
    return UnknownComponentType(f"unknown component type {component_type!r} (known: {known})")
