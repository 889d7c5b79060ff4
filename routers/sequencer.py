"""The sequencer API (Layotto's GetNextId over HTTP): ``POST /v1.0-alpha1/sequencer/{store}``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from routers import schemas
from routers.http import json_response, read_message, services
from routers.table import RouteTable

routes = RouteTable(tags=["sequencer"])


@routes.post(
    "/v1.0-alpha1/sequencer/{storeName}",
    summary="Get the next id of a sequence",
    description="Ids are unique per key across every sidecar sharing the store. WEAK (the default): "
    "trend-increasing, served from a block of segmentStep ids the sidecar reserves ahead; STRONG: "
    "strictly increasing, one store call each. nextId is an int64 as a string.",
    openapi_extra=schemas.json_body(schemas.ref(schemas.GetNextIdRequest)),
    responses={
        200: {"model": schemas.GetNextIdResponse, "description": "The id"},
        **schemas.errors_doc(
            {
                400: ["ERR_MALFORMED_REQUEST", "ERR_SEQUENCER_STORE_NOT_FOUND"],
                500: ["ERR_SEQUENCER_STORE_NOT_CONFIGURED", "ERR_SEQUENCER_GET_NEXT_ID"],
            }
        ),
    },
    response_class=Response,
)
async def get_next_id(request: Request, storeName: str) -> Response:
    next_id = await services(request).sequencer.next_id(storeName, await read_message(request))
    return json_response({"nextId": str(next_id)})
