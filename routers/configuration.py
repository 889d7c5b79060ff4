"""The configuration API: Dapr's get, subscribe and unsubscribe on ``/v1.0/configuration/{store}``
(and their identical ``/v1.0-alpha1`` aliases), and Layotto's save and delete on
``/v1.0-alpha1/configuration/{store}``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from routers import schemas
from routers.http import json_response, no_content, query_metadata, read_message, services
from routers.table import RouteTable

routes = RouteTable(tags=["configuration"])

_VERSIONS = ("v1.0", "v1.0-alpha1")
_STORE_ERRORS = {400: ["ERR_CONFIGURATION_STORE_NOT_FOUND"], 500: ["ERR_CONFIGURATION_STORE_NOT_CONFIGURED"]}
_SELECTION = (
    "Repeat key=<name> for each key (none: every item). group and label (or metadata.group and "
    "metadata.label) select Layotto's group and label; blank means default. " + schemas.METADATA_NOTE
)


_ITEMS = {"type": "object", "additionalProperties": schemas.ref(schemas.ConfigurationItemBody)}


def _errors(status: int, *names: str) -> dict[int | str, dict[str, Any]]:
    codes = {s: list(c) for s, c in _STORE_ERRORS.items()}
    codes.setdefault(status, []).extend(names)
    return schemas.errors_doc(codes)


def _write_doc(summary: str, description: str, model: type, done: str, failure: str) -> dict[str, Any]:
    """Layotto's save and delete: a JSON body, 204, the store's errors and the operation's own."""
    codes = {400: ["ERR_MALFORMED_REQUEST", *_STORE_ERRORS[400]], 500: [*_STORE_ERRORS[500], failure]}
    return {
        "summary": summary,
        "description": description,
        "openapi_extra": schemas.json_body(schemas.ref(model)),
        "responses": {204: {"description": done}, **schemas.errors_doc(codes)},
        "status_code": 204,
        "response_class": Response,
    }


def _keys(request: Request) -> list[str]:
    return request.query_params.getlist("key")


async def get_configuration(
    request: Request, storeName: str, group: str | None = None, label: str | None = None
) -> Response:
    service = services(request).configuration
    items = await service.get(storeName, _keys(request), query_metadata(request), group, label)
    return json_response(items) if items else Response(status_code=204)


async def subscribe_configuration(
    request: Request, storeName: str, group: str | None = None, label: str | None = None
) -> Response:
    service = services(request).configuration
    keys, metadata = _keys(request), query_metadata(request)
    subscription_id = await service.subscribe(storeName, keys, metadata, group, label)
    return json_response({"id": subscription_id})


async def unsubscribe_configuration(request: Request, storeName: str, subscriptionId: str) -> Response:
    await services(request).configuration.unsubscribe(storeName, subscriptionId)
    return json_response({"ok": True})


for _version in _VERSIONS:
    _suffix = "" if _version == "v1.0" else "_alpha1"
    routes.add(
        f"/{_version}/configuration/{{storeName}}",
        get_configuration,
        ["GET"],
        operation_id=f"get_configuration{_suffix}",
        summary="Get configuration items",
        description="Answers {key: {value, version, metadata}} (empty fields omitted); 204 when no "
        "item matches. " + _SELECTION,
        responses={
            200: {"description": "The items by key", "content": {"application/json": {"schema": _ITEMS}}},
            204: {"description": "No item matches"},
            **_errors(500, "ERR_CONFIGURATION_GET"),
        },
        response_class=Response,
    )
    routes.add(
        f"/{_version}/configuration/{{storeName}}/subscribe",
        subscribe_configuration,
        ["GET"],
        operation_id=f"subscribe_configuration{_suffix}",
        summary="Subscribe to configuration changes",
        description="Each later change of a selected key (made by any l8 or directly in the store) is "
        "POSTed to the app at /configuration/<store>/<key> as {id, items}, once, in order. Needs "
        "--app-port. " + _SELECTION,
        responses={
            200: {"model": schemas.SubscribeConfigurationResponse, "description": "The subscription id"},
            **_errors(500, "ERR_CONFIGURATION_SUBSCRIBE", "ERR_APP_CHANNEL_NIL"),
        },
        response_class=Response,
    )
    routes.add(
        f"/{_version}/configuration/{{storeName}}/{{subscriptionId}}/unsubscribe",
        unsubscribe_configuration,
        ["GET"],
        operation_id=f"unsubscribe_configuration{_suffix}",
        summary="Stop a configuration subscription",
        description="Any failure (an unknown id or store, a failed stop) answers 500 with a body of "
        "{message} only, as Dapr does.",
        responses={
            200: {"model": schemas.UnsubscribeConfigurationResponse, "description": "Stopped"},
            500: {
                "model": schemas.MessageBody,
                "description": "Dapr error: ERR_CONFIGURATION_UNSUBSCRIBE, without its code: {message} only",
            },
        },
        response_class=Response,
    )


@routes.post(
    "/v1.0-alpha1/configuration/{storeName}",
    **_write_doc(
        "Save configuration items (Layotto's SaveConfiguration)",
        "Creates or replaces each item (key, content, group, label, tags, metadata); each gets "
        "a new version and subscribers are told. 204 on success.",
        schemas.SaveConfigurationRequest,
        "Saved",
        "ERR_CONFIGURATION_SAVE",
    ),
)
async def save_configuration(request: Request, storeName: str) -> Response:
    await services(request).configuration.save(storeName, await read_message(request))
    return no_content()


@routes.post(
    "/v1.0-alpha1/configuration/{storeName}/delete",
    **_write_doc(
        "Delete configuration items (Layotto's DeleteConfiguration)",
        "Deletes the keys of one group and label (missing keys are ignored); 204 on success.",
        schemas.DeleteConfigurationRequest,
        "Deleted",
        "ERR_CONFIGURATION_DELETE",
    ),
)
async def delete_configuration(request: Request, storeName: str) -> Response:
    await services(request).configuration.delete(storeName, await read_message(request))
    return no_content()
