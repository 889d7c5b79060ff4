"""GetMetadata and SetMetadata over services/metadata.py: the HTTP answer's Dapr fields in the
proto's shape (l8's own additions, such as ``nameResolution``, have no field there)."""

from __future__ import annotations

from typing import Any

from dapr.proto.runtime.v1 import metadata_pb2
from google.protobuf import empty_pb2

from routers.grpc.calls import Context, Unary
from services.sidecar import Services

EMPTY = empty_pb2.Empty()
"""The one empty answer (grpcio only serializes it)."""
_SUBSCRIPTION_TYPES = {"DECLARATIVE": 1, "PROGRAMMATIC": 2, "STREAMING": 3}
_ACTOR_STATUS = {"INITIALIZING": 0, "DISABLED": 1, "RUNNING": 2}


def _subscription(found: dict[str, Any]) -> metadata_pb2.PubsubSubscription:
    rules = [
        metadata_pb2.PubsubSubscriptionRule(match=r["match"], path=r["path"]) for r in found.get("rules", ())
    ]
    return metadata_pb2.PubsubSubscription(
        pubsub_name=found["pubsubname"],
        topic=found["topic"],
        metadata=found.get("metadata", {}),
        rules=metadata_pb2.PubsubSubscriptionRules(rules=rules),
        dead_letter_topic=found.get("deadLetterTopic", ""),
        type=_SUBSCRIPTION_TYPES.get(str(found.get("type", "")).upper(), 0),  # type: ignore[arg-type]
    )


def _app_connection(found: dict[str, Any]) -> metadata_pb2.AppConnectionProperties:
    connection = metadata_pb2.AppConnectionProperties(
        port=found.get("port", 0),
        protocol=found.get("protocol", ""),
        channel_address=found.get("channelAddress", ""),
        max_concurrency=found.get("maxConcurrency", 0),
    )
    health = found.get("health")
    if health:
        connection.health.CopyFrom(
            metadata_pb2.AppConnectionHealthProperties(
                health_check_path=health.get("healthCheckPath", ""),
                health_probe_interval=health.get("healthProbeInterval", ""),
                health_probe_timeout=health.get("healthProbeTimeout", ""),
                health_threshold=health.get("healthThreshold", 0),
            )
        )
    return connection


def describe(found: dict[str, Any]) -> metadata_pb2.GetMetadataResponse:
    """The metadata service's description as daprd's GetMetadataResponse."""
    actors = found.get("actorRuntime") or {}
    return metadata_pb2.GetMetadataResponse(
        id=found["id"],
        runtime_version=found.get("runtimeVersion", ""),
        registered_components=[
            metadata_pb2.RegisteredComponents(
                name=c["name"], type=c["type"], version=c["version"], capabilities=c["capabilities"]
            )
            for c in found.get("components", ())
        ],
        extended_metadata=found.get("extended", {}),
        subscriptions=[_subscription(s) for s in found.get("subscriptions", ())],
        http_endpoints=[
            metadata_pb2.MetadataHTTPEndpoint(name=e["name"]) for e in found.get("httpEndpoints", ())
        ],
        app_connection_properties=_app_connection(found.get("appConnectionProperties") or {}),
        enabled_features=found.get("enabledFeatures", []),
        actor_runtime=metadata_pb2.ActorRuntime(
            runtime_status=_ACTOR_STATUS.get(actors.get("runtimeStatus", ""), 1),  # type: ignore[arg-type]
            host_ready=bool(actors.get("hostReady")),
            placement=actors.get("placement", ""),
        ),
    )


async def get_metadata(
    services: Services, request: Any, context: Context
) -> metadata_pb2.GetMetadataResponse:
    return describe(services.metadata.describe())


async def set_metadata(services: Services, request: Any, context: Context) -> empty_pb2.Empty:
    services.metadata.attach(request.key, request.value)
    return EMPTY


RPCS: dict[str, Unary] = {"GetMetadata": get_metadata, "SetMetadata": set_metadata}
