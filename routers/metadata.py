"""The metadata API: what this sidecar runs, and attributes an app attaches to it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app import DAPR_API_VERSION, __version__
from routers import schemas
from routers.http import json_response, no_content, read_body, runtime
from routers.table import RouteTable
from services import errors
from services.pubsub.subscriptions import Subscription

routes = RouteTable(tags=["metadata"])

# Dapr reports ACTOR for stores that can hold actor state (ETag and transactions).
_ACTOR_CAPABLE = {"ETAG", "TRANSACTIONAL"}


def _capabilities(instance: Any) -> list[str]:
    features = instance.features() if hasattr(instance, "features") else ()
    names = sorted(str(feature) for feature in features)
    if set(names) >= _ACTOR_CAPABLE:
        names.append("ACTOR")
    return names


@routes.get(
    "/v1.0/metadata",
    summary="Describe this sidecar",
    responses={200: {"model": schemas.MetadataResponse, "description": "Sidecar metadata"}},
    response_class=Response,
)
async def get_metadata(request: Request) -> Response:
    current = runtime(request)
    settings = current.settings
    body: dict[str, Any] = {
        "id": settings.app_id,
        # Dapr's version number: SDKs and tools read it to know what API they talk to.
        "runtimeVersion": DAPR_API_VERSION,
        "components": [
            {"name": c.name, "type": c.type, "version": c.version, "capabilities": _capabilities(c.instance)}
            for c in current.components
        ],
        "extended": {
            **current.extended_metadata,
            "daprRuntimeVersion": DAPR_API_VERSION,
            "l8Version": __version__,
        },
        "actorRuntime": {"runtimeStatus": "DISABLED", "hostReady": False, "placement": ""},
    }
    if current.subscriptions:
        body["subscriptions"] = [_subscription(s) for s in current.subscriptions]
    invocation = current.invocation
    if invocation.endpoints:
        body["httpEndpoints"] = [{"name": name} for name in sorted(invocation.endpoints)]
    # Not in Dapr's answer (daprd has no such field): how this sidecar finds other apps' sidecars.
    body["nameResolution"] = invocation.resolver.describe()
    if current.tcp_copy.enabled:  # l8's own too: the traffic dump's state and what it wrote
        body["tcpCopy"] = current.tcp_copy.describe()
    if current.rate_limits:  # also l8's own: each rule with what it let through, queued and refused
        body["rateLimits"] = current.rate_limits.describe()
    connection: dict[str, Any] = {
        "protocol": settings.app_protocol,
        "channelAddress": settings.app_channel_address,
    }
    if settings.app_port is not None:
        connection["port"] = settings.app_port
    body["appConnectionProperties"] = connection
    return json_response(body)


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


@routes.put(
    "/v1.0/metadata/{key}",
    summary="Attach an attribute to this sidecar",
    description="The body (any content type) becomes extended[key]; kept in memory only.",
    openapi_extra={
        "requestBody": {"required": False, "content": {"text/plain": {"schema": {"type": "string"}}}}
    },
    responses={
        204: {"description": "Stored"},
        400: {"model": schemas.ErrorBody, "description": "Dapr error: ERR_BODY_READ (body too large)"},
    },
    status_code=204,
    response_class=Response,
)
async def put_metadata(request: Request, key: str) -> Response:
    value = (await read_body(request, unreadable=errors.body_read)).decode("utf-8", errors="replace")
    if key:
        runtime(request).extended_metadata[key] = value
    return no_content()
