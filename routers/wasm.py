"""WebAssembly functions: the HTTP trigger ``/v1.0-alpha1/wasm/{id}/{path...}`` (Layotto's
``id`` header, as a path segment) and the admin routes ``/v1.0-alpha1/wasm/install|uninstall|update``
with Layotto's bodies. The admin routes come first: a function cannot be named install."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from routers import schemas
from routers.http import read_body, read_json, services
from routers.table import RouteTable
from services import errors
from services.wasm import function_settings

routes = RouteTable(tags=["wasm"])

_ADMIN_ERRORS = schemas.errors_doc(
    {
        400: ["ERR_MALFORMED_REQUEST", "ERR_WASM_MODULE_INVALID"],
        404: ["ERR_WASM_FUNCTION_NOT_FOUND"],
        409: ["ERR_WASM_FUNCTION_EXISTS"],
    }
)
_KEPT_OUT = {"host", "content-length", "dapr-api-token", "connection", "transfer-encoding"}
"""Request headers a function does not see: the API token, and the connection's own."""


def _admin(model: type, summary: str, description: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "description": description,
        "openapi_extra": schemas.json_body(schemas.ref(model)),
        "responses": {200: {"description": "Done (empty body)"}, **_ADMIN_ERRORS},
        "response_class": Response,
    }


@routes.post(
    "/v1.0-alpha1/wasm/install",
    **_admin(
        schemas.WasmInstallRequest,
        "Install a function",
        "Compiles the module, instantiates it and runs its start sequence; its proxy_get_id must name "
        "it `name`. 409 ERR_WASM_FUNCTION_EXISTS when `name` is installed; a module that is not wasm, "
        "lacks proxy_get_id or imports what l8 does not provide is refused (400).",
    ),
)
async def install(request: Request) -> Response:
    await services(request).wasm.install(function_settings(await read_json(request)))
    return Response(status_code=200)


@routes.post(
    "/v1.0-alpha1/wasm/uninstall",
    **_admin(
        schemas.WasmNameRequest,
        "Uninstall a function",
        "Calls in flight finish; new ones answer 404.",
    ),
)
async def uninstall(request: Request) -> Response:
    body = await read_json(request)
    name = body.get("name") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name:
        raise errors.malformed("the body has no name")
    await services(request).wasm.uninstall(name)
    return Response(status_code=200)


@routes.post(
    "/v1.0-alpha1/wasm/update",
    **_admin(schemas.WasmUpdateRequest, "Resize a function's pool", "Sets the pool's size to instance_num."),
)
async def update(request: Request) -> Response:
    body = await read_json(request)
    name = body.get("name") if isinstance(body, dict) else None
    instances = body.get("instance_num") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name:
        raise errors.malformed("the body has no name")
    if isinstance(instances, bool) or not isinstance(instances, int):
        raise errors.malformed("instance_num must be a whole number")
    await services(request).wasm.update(name, instances)
    return Response(status_code=200)


_CALL_DOC: dict[str, Any] = {
    "summary": "Run a function",
    "description": "Runs function `id` with the request's headers and body (the query string when the "
    "body is empty, as Layotto does); the function's response body, headers and status come back. "
    "404 ERR_WASM_FUNCTION_NOT_FOUND for an unknown id, 500 ERR_WASM_FUNCTION_TRAP when it traps or "
    "passes its time limit, 503 ERR_WASM_FUNCTION_BUSY when no instance frees up in time.",
    "responses": {
        200: {"description": "What the function answers"},
        **schemas.errors_doc(
            {
                404: ["ERR_WASM_FUNCTION_NOT_FOUND"],
                500: ["ERR_WASM_FUNCTION_TRAP"],
                503: ["ERR_WASM_FUNCTION_BUSY"],
            }
        ),
    },
    "openapi_extra": schemas.raw_body("The function's request body"),
    "response_class": Response,
}


async def _call(request: Request, function_id: str, path: str) -> Response:
    from wasm.runner import Request as FunctionRequest

    body = await read_body(request)
    query: bytes = request.scope.get("query_string", b"")
    headers = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in request.scope["headers"]
        if name.decode("latin-1").lower() not in _KEPT_OUT
    ]
    target = "/" + path + ("?" + query.decode("latin-1") if query else "")
    answer = await services(request).wasm.call(
        function_id, FunctionRequest(headers, body or query, request.method, target)
    )
    response = Response(answer.body, status_code=answer.status)
    for name, value in answer.headers:
        if name.lower() != "content-length":
            response.headers.append(name, value)
    return response


_CALL_ROOT_DOC = {**_CALL_DOC, "summary": "Run a function (no path)"}


@routes.post("/v1.0-alpha1/wasm/{id}/{path:anykey}", operation_id="wasm_call", **_CALL_DOC)
@routes.get("/v1.0-alpha1/wasm/{id}/{path:anykey}", operation_id="wasm_call_get", **_CALL_DOC)
async def call_function(request: Request, id: str, path: str) -> Response:
    return await _call(request, id, path)


@routes.post("/v1.0-alpha1/wasm/{id}", operation_id="wasm_call_root", **_CALL_ROOT_DOC)
@routes.get("/v1.0-alpha1/wasm/{id}", operation_id="wasm_call_root_get", **_CALL_ROOT_DOC)
async def call_function_root(request: Request, id: str) -> Response:
    return await _call(request, id, "")


_BY_HEADER_DOC = {
    **_CALL_DOC,
    "summary": "Run the function the id header names (Layotto's form)",
    "description": "Layotto's demo request, `curl -H 'id: id_1' 'host:2045?name=book1'`, on l8's port: "
    "the `id` header names the function. No `id` header: 400 ERR_MALFORMED_REQUEST. "
    + _CALL_DOC["description"],
    "responses": {
        **_CALL_DOC["responses"],
        **schemas.errors_doc(
            {
                400: ["ERR_MALFORMED_REQUEST"],
                404: ["ERR_WASM_FUNCTION_NOT_FOUND"],
                500: ["ERR_WASM_FUNCTION_TRAP"],
                503: ["ERR_WASM_FUNCTION_BUSY"],
            }
        ),
    },
}


@routes.post("/v1.0-alpha1/wasm", operation_id="wasm_call_by_header", **_BY_HEADER_DOC)
@routes.get("/v1.0-alpha1/wasm", operation_id="wasm_call_by_header_get", **_BY_HEADER_DOC)
async def call_function_by_header(request: Request) -> Response:
    function_id = request.headers.get("id")
    if not function_id:
        raise errors.malformed("the request names no function: give an id header or /v1.0-alpha1/wasm/{id}")
    return await _call(request, function_id, "")
