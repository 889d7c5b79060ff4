"""The output bindings API: Dapr's ``POST|PUT /v1.0/bindings/{name}``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from routers import schemas
from routers.http import JSON, no_content, read_json, services
from routers.table import RouteTable
from services.bindings import TraceHeaders, answer_headers

routes = RouteTable(tags=["bindings"])


def _trace(request: Request) -> TraceHeaders:
    traceparent = tracestate = baggage = None
    for name, value in request.scope["headers"]:
        if name == b"traceparent":
            traceparent = value.decode("latin-1")
        elif name == b"tracestate":
            tracestate = value.decode("latin-1")
        elif name == b"baggage":
            baggage = value.decode("latin-1")
    return TraceHeaders(traceparent, tracestate, baggage)


_DOC = {
    "summary": "Invoke an output binding",
    "description": "The binding's answer: 204 when it has none, else 200 with its bytes (Content-Type "
    "application/json unless the binding says otherwise), even when empty. The binding's answer "
    "metadata comes back as metadata.<key> headers, also beside an error. The request's traceparent, "
    "tracestate and baggage reach the binding in its metadata.",
    "openapi_extra": schemas.json_body(schemas.ref(schemas.OutputBindingRequest)),
    "responses": {
        200: {"description": "The binding's answer, as it gave it", "content": {"*/*": {}}},
        204: {"description": "The binding has nothing to answer"},
        **schemas.errors_doc({400: ["ERR_MALFORMED_REQUEST"], 500: ["ERR_INVOKE_OUTPUT_BINDING"]}),
    },
    "response_class": Response,
}


@routes.post("/v1.0/bindings/{name}", operation_id="invoke_binding", **_DOC)
@routes.put("/v1.0/bindings/{name}", operation_id="invoke_binding_put", **_DOC)
async def invoke_binding(request: Request, name: str) -> Response:
    body = await read_json(request, prefix="failed deserializing HTTP body: ")
    answer = await services(request).bindings.output.invoke(name, body, _trace(request))
    if answer is None:
        return no_content()
    return Response(
        answer.data, status_code=200, media_type=answer.content_type or JSON, headers=answer_headers(answer)
    )
