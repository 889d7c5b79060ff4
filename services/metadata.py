"""The metadata building block: what this sidecar runs (``GET /v1.0/metadata``) and the attributes
an app attaches to it (``PUT /v1.0/metadata/{key}``, kept in memory)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.loaded import ComponentStore, LoadedComponent
from mesh.app_health import AppHealth
from mesh.ratelimit import RateLimits
from mesh.tcpcopy import TcpCopy
from services.actors import ActorRuntime
from services.bindings.directions import directions
from services.invocation import InvocationService
from services.pubsub.subscriptions import Subscription
from services.wasm import WasmService

# Dapr reports ACTOR for stores that can hold actor state (ETag and transactions).
_ACTOR_CAPABLE = {"ETAG", "TRANSACTIONAL"}


@dataclass(frozen=True, slots=True)
class Versions:
    dapr: str
    """The Dapr API release l8 reproduces: SDKs and tools read it to know what API they talk to."""
    l8: str


@dataclass(slots=True)
class MetadataService:
    app_id: str
    versions: Versions
    components: ComponentStore
    invocation: InvocationService
    subscriptions: Callable[[], Sequence[Subscription]]
    """Every subscription this sidecar knows at the moment (declarative and the app's)."""
    app_connection: Mapping[str, Any]
    tcp_copy: TcpCopy | None = None
    rate_limits: RateLimits | None = None
    wasm: WasmService | None = None
    app_health: AppHealth | None = None
    actors: ActorRuntime | None = None
    extended: dict[str, str] = field(default_factory=dict)
    scheduler_addresses: Sequence[str] = ()
    grpc_port: int | None = None
    """The port of this sidecar's gRPC API, once it listens: how gRPC proxying reaches it."""
    """Where the scheduler's store is (Dapr lists its scheduler services' addresses)."""

    def describe(self) -> dict[str, Any]:
        """Dapr's answer, plus l8's own ``nameResolution``, ``placement``, ``tcpCopy``,
        ``rateLimits``, ``wasmFunctions`` and ``appHealth``."""
        body: dict[str, Any] = {
            "id": self.app_id,
            "runtimeVersion": self.versions.dapr,
            "components": [
                {
                    "name": c.name,
                    "type": c.type,
                    "version": c.version,
                    "capabilities": capabilities(_features(c)),
                }
                for c in self.components
            ],
            "extended": {
                **self.extended,
                "daprRuntimeVersion": self.versions.dapr,
                "l8Version": self.versions.l8,
            },
            "actorRuntime": {"runtimeStatus": "DISABLED", "hostReady": False, "placement": ""},
        }
        if self.actors is not None:
            runtime = self.actors.describe()
            body["actorRuntime"] = runtime
            if runtime["activeActors"]:  # Dapr's deprecated alias
                body["actors"] = runtime["activeActors"]
            # l8's: the placement this sidecar sees (its store, the hosts of each type it has read)
            body["placement"] = self.actors.placement.describe()
        if self.scheduler_addresses:  # snake_case, as daprd writes it
            body["scheduler"] = {"connected_addresses": list(self.scheduler_addresses)}
        subscriptions = self.subscriptions()
        if subscriptions:
            body["subscriptions"] = [_subscription(s) for s in subscriptions]
        if self.invocation.endpoints:
            body["httpEndpoints"] = [{"name": name} for name in sorted(self.invocation.endpoints)]
        # Not in Dapr's answer (daprd has no such field): how this sidecar finds other apps' sidecars.
        body["nameResolution"] = self.invocation.resolver.describe()
        if self.grpc_port is not None:  # l8's: where another sidecar proxies gRPC calls for this app
            body["grpcPort"] = self.grpc_port
        if self.tcp_copy is not None and self.tcp_copy.enabled:
            body["tcpCopy"] = self.tcp_copy.describe()
        if self.rate_limits:  # each rule with what it let through, queued and refused
            body["rateLimits"] = self.rate_limits.describe()
        if self.wasm is not None and self.wasm.functions:  # l8's: each function with its counters
            body["wasmFunctions"] = self.wasm.describe()
        body["appConnectionProperties"] = dict(self.app_connection)
        if self.app_health is not None:  # l8's: what the probes say now (unknown, healthy, unhealthy)
            body["appHealth"] = {"status": str(self.app_health.status)}
        return body

    def attach(self, key: str, value: str) -> None:
        """An app's attribute, reported under ``extended``; an empty key is ignored, as in Dapr."""
        if key:
            self.extended[key] = value


def _features(component: LoadedComponent) -> Any:
    """A binding reports the directions this sidecar uses it in (its ``direction`` metadata)."""
    if component.category == "bindings":
        return directions(component)
    return component.instance.features()


def capabilities(features: Any) -> list[str]:
    names = sorted(str(feature) for feature in features)
    if set(names) >= _ACTOR_CAPABLE:
        names.append("ACTOR")
    return names


def _subscription(subscription: Subscription) -> dict[str, Any]:
    """Dapr's shape: metadata and rules omitted when empty, deadLetterTopic always present."""
    found: dict[str, Any] = {"pubsubname": subscription.pubsub, "topic": subscription.topic}
    if subscription.metadata:
        found["metadata"] = dict(subscription.metadata)
    if subscription.rules:
        found["rules"] = [{"match": rule.match, "path": rule.path} for rule in subscription.rules]
    found["deadLetterTopic"] = subscription.dead_letter_topic
    found["type"] = str(subscription.type)
    return found
