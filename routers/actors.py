"""Dapr's actor API (dapr-http-api.md section 12.1): invoke a method, actor state, reminders and
timers, all under ``/v1.0/actors/{actorType}/{actorId}/``."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from mesh.app_channel import AppResponse
from mesh.proxy import VOUCHED
from routers import schemas
from routers.http import JSON, json_response, no_content, read_body, read_json, services
from routers.invoke import raw_path
from routers.table import RouteTable
from services import errors
from services.actors.forward import hops
from services.actors.service import ActorRuntime
from services.actors.timer_spec import described

routes = RouteTable(tags=["actors"])

ACTOR = "/v1.0/actors/{actorType}/{actorId}"
_NAMES = {400: ["ERR_BAD_REQUEST"], 403: ["ERR_ACTOR_TYPE_RESERVED"], 503: ["ERR_ACTOR_RUNTIME_CLOSED"]}
_DROPPED_ANSWER = frozenset(
    {b"content-length", b"transfer-encoding", b"connection", b"keep-alive", b"date", b"server"}
)


def _codes(more: dict[int, list[str]]) -> dict[int | str, dict[str, Any]]:
    """The route's own error codes beside those of every actor route (names, reserved types,
    shutdown)."""
    codes: dict[int, list[str]] = {status: list(names) for status, names in _NAMES.items()}
    for status, names in more.items():
        codes.setdefault(status, []).extend(names)
    return schemas.errors_doc(codes)


def _runtime(request: Request) -> ActorRuntime:
    runtime = services(request).actors
    if runtime is None:
        raise errors.actor_runtime_closed()
    return runtime


def _headers(request: Request) -> list[tuple[str, str]]:
    return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in request.scope["headers"]]


def _hop(request: Request, headers: list[tuple[str, str]]) -> int:
    """How many sidecars forwarded the call; a forwarded call must carry the fleet's mesh token
    when one is configured."""
    hop = hops(headers)
    if hop and request.scope.get(VOUCHED) is False:
        raise errors.actor_forward_refused()
    return hop


def _decoded(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        reason = "unexpected end of JSON input" if not raw.strip() else str(exc)
        raise errors.malformed(reason) from None


def _answer(response: AppResponse) -> Response:
    answer = Response(response.body, status_code=response.status)
    answer.raw_headers = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in response.headers.items()
        if name.lower().encode("latin-1") not in _DROPPED_ANSWER
    ] + [(b"content-length", str(len(response.body)).encode())]
    return answer


# -- invoke ----------------------------------------------------------------------------------------


async def invoke_actor(request: Request, actorType: str, actorId: str, method: str) -> Response:
    runtime = _runtime(request)
    headers = _headers(request)
    hop = _hop(request, headers)
    # The method goes to the app as the caller escaped it.
    escaped = raw_path(request).split("/", 5)[5][len("method/") :]
    response = await runtime.invoke(
        actorType,
        actorId,
        escaped,
        verb=request.method,
        query=request.scope["query_string"].decode("latin-1"),
        headers=headers,
        body=await read_body(request),
        hop=hop,
    )
    return _answer(response)


for _verb in ("GET", "POST", "PUT", "DELETE"):
    routes.add(
        f"{ACTOR}/method/{{method:anykey}}",
        invoke_actor,
        [_verb],
        operation_id=f"invoke_actor_{_verb.lower()}",
        summary="Invoke an actor method",
        description="Made as `PUT /actors/{actorType}/{actorId}/method/{method}` on the app that hosts the "
        "actor (this sidecar's, or the owner sidecar's), one turn at a time per actor; headers, query "
        "string and body go through. The app's 200 answer comes back as it is; another status is 500 "
        "ERR_ACTOR_INVOKE_METHOD unless the app set `X-Daprerrorresponseheader`.",
        openapi_extra=schemas.raw_body("The method's input, passed through"),
        responses={
            200: {"description": "The actor method's answer"},
            **_codes(
                {
                    403: ["ERR_PERMISSION_DENIED"],
                    404: ["ERR_ACTOR_NO_ADDRESS"],
                    500: ["ERR_ACTOR_INVOKE_METHOD", "ERR_ACTOR_STACK_DEPTH"],
                }
            ),
        },
        response_class=Response,
    )


# -- state -----------------------------------------------------------------------------------------


@routes.get(
    f"{ACTOR}/state/{{key:anykey}}",
    summary="Get an actor's state value",
    description="The stored JSON as it was saved, or 204 when there is none. The actor must be active on "
    "this sidecar.",
    responses={
        200: {"description": "The stored JSON value"},
        204: {"description": "No value under the key"},
        **_codes(
            {400: ["ERR_ACTOR_INSTANCE_MISSING"], 500: ["ERR_ACTOR_RUNTIME_NOT_FOUND", "ERR_ACTOR_STATE_GET"]}
        ),
    },
    response_class=Response,
)
async def get_actor_state(request: Request, actorType: str, actorId: str, key: str) -> Response:
    item = await _runtime(request).get_state(actorType, actorId, key)
    if item is None:
        return Response(status_code=204)
    return Response(item.value, media_type=JSON)


_TRANSACTION_DOC: dict[str, Any] = {
    "summary": "Save an actor's state",
    "description": "A bare JSON array of upsert and delete operations, applied all together or not at all "
    "(ETags checked; `metadata.ttlInSeconds` on an upsert). The actor must be active on this sidecar.",
    "openapi_extra": schemas.json_body({"type": "array", "items": schemas.ref(schemas.ActorStateOperation)}),
    "responses": {
        204: {"description": "Saved"},
        **_codes(
            {
                400: [
                    "ERR_MALFORMED_REQUEST",
                    "ERR_ACTOR_INSTANCE_MISSING",
                    "ERR_NOT_SUPPORTED_STATE_OPERATION",
                ],
                500: ["ERR_ACTOR_RUNTIME_NOT_FOUND", "ERR_ACTOR_STATE_TRANSACTION_SAVE"],
            }
        ),
    },
    "status_code": 204,
    "response_class": Response,
}


@routes.post(f"{ACTOR}/state", operation_id="actor_state_transaction", **_TRANSACTION_DOC)
@routes.put(f"{ACTOR}/state", operation_id="actor_state_transaction_put", **_TRANSACTION_DOC)
async def actor_state_transaction(request: Request, actorType: str, actorId: str) -> Response:
    runtime = _runtime(request)
    body = await read_json(request)
    await runtime.transact_state(actorType, actorId, body)
    return no_content()


# -- reminders -------------------------------------------------------------------------------------

_REMINDER = f"{ACTOR}/reminders/{{name}}"
_CREATE_REMINDER_DOC: dict[str, Any] = {
    "summary": "Create an actor reminder",
    "description": "Durable: kept by the scheduler, fired as "
    "`PUT /actors/{type}/{id}/method/remind/{name}` on the actor's owner. "
    "`overwrite: false` refuses to replace one (409).",
    "openapi_extra": schemas.json_body(schemas.ref(schemas.ReminderRequest)),
    "responses": {
        204: {"description": "Created"},
        **_codes(
            {
                400: ["ERR_MALFORMED_REQUEST"],
                403: ["ERR_ACTOR_REMINDER_NON_HOSTED"],
                409: ["ERR_ACTOR_REMINDER_ALREADY_EXISTS"],
                500: ["ERR_ACTOR_REMINDER_CREATE"],
            }
        ),
    },
    "status_code": 204,
    "response_class": Response,
}


@routes.post(_REMINDER, operation_id="create_actor_reminder", **_CREATE_REMINDER_DOC)
@routes.put(_REMINDER, operation_id="create_actor_reminder_put", **_CREATE_REMINDER_DOC)
async def create_reminder(request: Request, actorType: str, actorId: str, name: str) -> Response:
    runtime = _runtime(request)
    await runtime.create_reminder(actorType, actorId, name, await read_json(request))
    return no_content()


@routes.get(
    _REMINDER,
    summary="Get an actor reminder",
    responses={
        200: {"model": schemas.Reminder, "description": "The reminder as created"},
        **_codes(
            {
                403: ["ERR_ACTOR_REMINDER_NON_HOSTED"],
                404: ["ERR_ACTOR_REMINDER_NOT_FOUND"],
                500: ["ERR_ACTOR_REMINDER_GET"],
            }
        ),
    },
    response_class=Response,
)
async def get_reminder(request: Request, actorType: str, actorId: str, name: str) -> Response:
    return json_response(await _runtime(request).get_reminder(actorType, actorId, name))


@routes.delete(
    _REMINDER,
    summary="Delete an actor reminder",
    responses={
        204: {"description": "Deleted (or was not there)"},
        **_codes({403: ["ERR_ACTOR_REMINDER_NON_HOSTED"], 500: ["ERR_ACTOR_REMINDER_DELETE"]}),
    },
    status_code=204,
    response_class=Response,
)
async def delete_reminder(request: Request, actorType: str, actorId: str, name: str) -> Response:
    await _runtime(request).delete_reminder(actorType, actorId, name)
    return no_content()


# -- timers ----------------------------------------------------------------------------------------

_TIMER = f"{ACTOR}/timers/{{name}}"
_CREATE_TIMER_DOC: dict[str, Any] = {
    "summary": "Create an actor timer",
    "description": "In memory, on the actor's activation (activated if it is not): fired as "
    "`PUT /actors/{type}/{id}/method/timer/{name}` as a turn of the actor, gone when it deactivates.",
    "openapi_extra": schemas.json_body(schemas.ref(schemas.TimerRequest)),
    "responses": {
        204: {"description": "Created"},
        **_codes(
            {
                400: ["ERR_MALFORMED_REQUEST"],
                404: ["ERR_ACTOR_NO_ADDRESS"],
                500: ["ERR_ACTOR_TIMER_CREATE", "ERR_ACTOR_INVOKE_METHOD"],
            }
        ),
    },
    "status_code": 204,
    "response_class": Response,
}


@routes.post(_TIMER, operation_id="create_actor_timer", **_CREATE_TIMER_DOC)
@routes.put(_TIMER, operation_id="create_actor_timer_put", **_CREATE_TIMER_DOC)
async def create_timer(request: Request, actorType: str, actorId: str, name: str) -> Response:
    runtime = _runtime(request)
    headers = _headers(request)
    hop = _hop(request, headers)
    raw = await read_body(request)
    body = _decoded(raw)
    forwarded = await runtime.create_timer(actorType, actorId, name, body, raw, headers, hop)
    return no_content() if forwarded is None else _answer(forwarded)


_READ_TIMER_CODES = {
    403: ["ERR_ACTOR_TIMER_NON_HOSTED", "ERR_ACTOR_TIMER_NOT_OWNED"],
    404: ["ERR_ACTOR_NO_ADDRESS"],
}


@routes.get(
    f"{ACTOR}/timers",
    summary="List an actor's timers",
    description='The actor\'s running timers, by name: `{"timers":[{"name","actorType",...}]}`, empty '
    "when the actor is not active. Timers are host-local, as in daprd: another sidecar than the "
    "actor's owner answers 403 ERR_ACTOR_TIMER_NOT_OWNED.",
    responses={200: {"model": schemas.TimerList, "description": "The timers"}, **_codes(_READ_TIMER_CODES)},
    response_class=Response,
)
async def list_timers(request: Request, actorType: str, actorId: str) -> Response:
    timers = await _runtime(request).timers_of(actorType, actorId)
    listed = [{"name": timer.name, **described(timer, actorType, actorId)} for timer in timers]
    return json_response({"timers": listed})


@routes.get(
    _TIMER,
    summary="Get an actor timer",
    description="The running timer as registered; only on the actor's owner (as the list).",
    responses={
        200: {"model": schemas.Timer, "description": "The timer"},
        **_codes({**_READ_TIMER_CODES, 404: ["ERR_ACTOR_NO_ADDRESS", "ERR_ACTOR_TIMER_NOT_FOUND"]}),
    },
    response_class=Response,
)
async def get_timer(request: Request, actorType: str, actorId: str, name: str) -> Response:
    timer = await _runtime(request).timer(actorType, actorId, name)
    return json_response(described(timer, actorType, actorId))


@routes.delete(
    _TIMER,
    summary="Delete an actor timer",
    responses={204: {"description": "Deleted (or was not there)"}, **_codes({404: ["ERR_ACTOR_NO_ADDRESS"]})},
    status_code=204,
    response_class=Response,
)
async def delete_timer(request: Request, actorType: str, actorId: str, name: str) -> Response:
    runtime = _runtime(request)
    headers = _headers(request)
    forwarded = await runtime.delete_timer(actorType, actorId, name, headers, _hop(request, headers))
    return no_content() if forwarded is None else _answer(forwarded)
