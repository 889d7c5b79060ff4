"""daprd's span of a gRPC API call (``pkg/diagnostics/grpc_tracing.go``
``GRPCTraceUnaryServerInterceptor`` and ``spanAttributesMapFromGRPC``), as the HTTP API's is made
in observability/tracing/attributes.py:

- a CLIENT span named after the full method (``/dapr.proto.runtime.v1.Dapr/GetState``), except
  ``InvokeService``: ``CallLocal/{id}/{method}``; under the caller's ``traceparent`` metadata;
- ``dapr.protocol: grpc``, ``dapr.api`` (the full method), every ``dapr-*`` metadata entry;
- state get, save and delete, secrets get, bindings: ``db.system`` and ``db.connection_string``
  (the block), ``db.name`` (the component), ``db.statement`` (the full method), ``rpc.service: Dapr``;
- publish and bulk publish: ``messaging.system: pubsub``, ``messaging.destination.name`` (the
  topic), ``rpc.service: Dapr``; invocation: ``rpc.service: ServiceInvocation``, ``net.peer.name``;
- a failed call's status is ERROR with the gRPC status message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_DATABASES = {
    "GetState": "state",
    "SaveState": "state",
    "DeleteState": "state",
    "GetSecret": "secrets",
    "InvokeBinding": "bindings",
}
_PUBLISH = frozenset({"PublishEvent", "BulkPublishEvent", "BulkPublishEventAlpha1"})


def span_of(
    full_method: str, name: str, request: Any, metadata: Mapping[str, str]
) -> tuple[str, dict[str, Any]]:
    """(the span's name, its attributes) for a call of ``name`` with ``request``."""
    attributes: dict[str, Any] = {
        key: value for key, value in metadata.items() if key.startswith("dapr-") and key != "dapr-api-token"
    }
    span_name = full_method
    database = _DATABASES.get(name)
    if database is not None:
        attributes["db.name"] = request.name if name == "InvokeBinding" else request.store_name
        attributes["rpc.service"] = "Dapr"
        attributes["db.system"] = database
        attributes["db.statement"] = full_method
        attributes["db.connection_string"] = database
    elif name in _PUBLISH:
        attributes["rpc.service"] = "Dapr"
        attributes["messaging.system"] = "pubsub"
        attributes["messaging.destination.name"] = request.topic
    elif name == "InvokeService":
        attributes["rpc.service"] = "ServiceInvocation"
        attributes["net.peer.name"] = request.id
        span_name = f"CallLocal/{request.id}/{request.message.method}"
    attributes["dapr.protocol"] = "grpc"
    attributes["dapr.api"] = full_method
    return span_name, attributes
