"""The secrets API: Dapr's ``GET /v1.0/secrets/{store}/{key}`` and ``GET /v1.0/secrets/{store}/bulk``.

Answers are Go's ``json.Marshal`` of the store's maps: keys sorted. A secret name containing ``/``
is sent escaped (``%2F``), as with daprd; the name ``bulk`` is the bulk route."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from routers import schemas
from routers.http import JSON, no_content, query_metadata, services
from routers.table import RouteTable

routes = RouteTable(tags=["secrets"])

_STORE_ERRORS = {
    401: ["ERR_SECRET_STORE_NOT_FOUND"],
    500: ["ERR_SECRET_STORES_NOT_CONFIGURED", "ERR_SECRET_GET"],
}
_SECRET = {"type": "object", "additionalProperties": {"type": "string"}}


def _sorted_json(payload: object) -> Response:
    return Response(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS), media_type=JSON)


@routes.get(
    "/v1.0/secrets/{secretStoreName}/bulk",
    summary="Get every secret of a store",
    description="Answers {name: {key: value}} for every secret the store holds, leaving out silently "
    "those the Configuration's spec.secrets.scopes deny. " + schemas.METADATA_NOTE,
    responses={
        200: {
            "description": "The secrets by name",
            "content": {"application/json": {"schema": {"type": "object", "additionalProperties": _SECRET}}},
        },
        **schemas.errors_doc(_STORE_ERRORS),
    },
    response_class=Response,
)
async def bulk_get_secret(request: Request, secretStoreName: str) -> Response:
    secrets = await services(request).secrets.bulk_get(secretStoreName, query_metadata(request))
    return _sorted_json(secrets)


@routes.get(
    "/v1.0/secrets/{secretStoreName}/{key}",
    summary="Get a secret",
    description="Answers the secret's key/value pairs ({key: value}; several for a multi-valued "
    "store), 204 when the store has no data for it. 401 for an unknown store (daprd's status), 403 "
    "when spec.secrets.scopes deny the name; a missing secret is 500 ERR_SECRET_GET. "
    + schemas.METADATA_NOTE,
    responses={
        200: {"description": "The secret", "content": {"application/json": {"schema": _SECRET}}},
        204: {"description": "The store has no data for this secret"},
        **schemas.errors_doc({**_STORE_ERRORS, 403: ["ERR_PERMISSION_DENIED"]}),
    },
    response_class=Response,
)
async def get_secret(request: Request, secretStoreName: str, key: str) -> Response:
    secret = await services(request).secrets.get(secretStoreName, key, query_metadata(request))
    return no_content() if secret is None else _sorted_json(secret)
