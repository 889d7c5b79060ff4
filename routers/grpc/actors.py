"""The actor RPCs over services/actors/ as the HTTP routes use it: InvokeActor, GetActorState,
ExecuteActorStateTransaction, Register/Get/UnregisterActorTimer, ListActorTimers,
Register/Get/UnregisterActorReminder, UnregisterActorRemindersByType, ListActorReminders.

Bytes on this transport: an invocation's ``data`` goes to the actor as its body and the app's
answer comes back as ``data``; a transaction's ``value`` (an ``Any``) is stored as its bytes, as
daprd stores it (JSON bytes read back over HTTP as that JSON). A timer's or reminder's ``data``
bytes are its JSON value when they parse as JSON, else a JSON string of their base64; a reminder
read back (or listed) carries that JSON in a ``google.protobuf.Value``, a timer read back (or
listed) in a ``google.protobuf.BytesValue`` of the JSON's bytes, as daprd answers them.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import orjson
from dapr.proto.runtime.v1 import actors_pb2
from google.protobuf import empty_pb2, wrappers_pb2

from mesh.app_channel import AppResponse
from routers.grpc.calls import Context, Unary, string_map
from routers.grpc.jobs import policy_json
from routers.grpc.payloads import any_of
from services import errors
from services.actors.service import ActorRuntime
from services.actors.timer_spec import Timer, rfc3339
from services.sidecar import Services

EMPTY = empty_pb2.Empty()


def _runtime(services: Services) -> ActorRuntime:
    if services.actors is None:
        raise errors.actor_runtime_closed()
    return services.actors


def _data(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return base64.b64encode(raw).decode()


def _schedule(request: Any, *fields: str) -> dict[str, Any]:
    """The HTTP API's body of a timer or reminder: its non-empty strings, and its data."""
    names = {"due_time": "dueTime", "period": "period", "ttl": "ttl", "callback": "callback"}
    body: dict[str, Any] = {names[f]: getattr(request, f) for f in fields if getattr(request, f)}
    if request.data:
        body["data"] = _data(request.data)
    return body


def _forwarded(answer: AppResponse | None) -> None:
    """The owner sidecar's answer to a forwarded timer call: an error status is the call's error."""
    if answer is not None and answer.status >= 300:
        try:
            found = orjson.loads(answer.body)
            raise errors.ApiError(answer.status, found["errorCode"], found["message"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise errors.actor_invoke_failed(
                f"({answer.status}) {answer.body.decode(errors='replace')}"
            ) from None


async def invoke_actor(services: Services, request: Any, context: Context) -> actors_pb2.InvokeActorResponse:
    answer = await _runtime(services).invoke(
        request.actor_type,
        request.actor_id,
        quote(request.method, safe=""),
        headers=list(string_map(request.metadata).items()),
        body=request.data,
    )
    return actors_pb2.InvokeActorResponse(data=answer.body)


async def get_actor_state(
    services: Services, request: Any, context: Context
) -> actors_pb2.GetActorStateResponse:
    item = await _runtime(services).get_state(request.actor_type, request.actor_id, request.key)
    if item is None:
        return actors_pb2.GetActorStateResponse()
    metadata = {}
    if item.expires_at is not None:
        metadata["ttlExpireTime"] = item.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return actors_pb2.GetActorStateResponse(data=item.value, metadata=metadata)


def _operation(operation: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"key": operation.key, "metadata": string_map(operation.metadata)}
    if operation.HasField("value"):
        found["value"] = operation.value.value
    return {"operation": operation.operationType, "request": found}


async def execute_actor_state_transaction(
    services: Services, request: Any, context: Context
) -> empty_pb2.Empty:
    operations = [_operation(operation) for operation in request.operations]
    await _runtime(services).transact_state(request.actor_type, request.actor_id, operations)
    return EMPTY


async def register_timer(services: Services, request: Any, context: Context) -> empty_pb2.Empty:
    body = _schedule(request, "due_time", "period", "ttl", "callback")
    forwarded = await _runtime(services).create_timer(
        request.actor_type, request.actor_id, request.name, body, orjson.dumps(body), [], 0
    )
    _forwarded(forwarded)
    return EMPTY


async def unregister_timer(services: Services, request: Any, context: Context) -> empty_pb2.Empty:
    forwarded = await _runtime(services).delete_timer(
        request.actor_type, request.actor_id, request.name, [], 0
    )
    _forwarded(forwarded)
    return EMPTY


async def register_reminder(services: Services, request: Any, context: Context) -> empty_pb2.Empty:
    body = _schedule(request, "due_time", "period", "ttl")
    if request.HasField("overwrite"):
        body["overwrite"] = request.overwrite
    if request.HasField("failure_policy"):
        policy = policy_json(request.failure_policy)
        if policy is not None:
            body["failurePolicy"] = policy
    await _runtime(services).create_reminder(request.actor_type, request.actor_id, request.name, body)
    return EMPTY


def _reminder(found: dict[str, Any], answer: Any) -> None:
    """A reminder as services/actors/reminders.py describes it, into ``answer`` (a
    GetActorReminderResponse or an ActorReminder: the same fields)."""
    if found.get("dueTime"):
        answer.due_time = found["dueTime"]
    if found.get("period"):
        answer.period = found["period"]
    if "ttl" in found:
        answer.ttl = found["ttl"]
    if "data" in found:
        answer.data.CopyFrom(any_of(orjson.loads(orjson.dumps(found["data"]))))


async def get_reminder(
    services: Services, request: Any, context: Context
) -> actors_pb2.GetActorReminderResponse:
    found = await _runtime(services).get_reminder(request.actor_type, request.actor_id, request.name)
    answer = actors_pb2.GetActorReminderResponse(actor_type=request.actor_type, actor_id=request.actor_id)
    _reminder(found, answer)
    return answer


async def list_reminders(
    services: Services, request: Any, context: Context
) -> actors_pb2.ListActorRemindersResponse:
    """Every reminder of a hosted type, or of one actor of it (``actor_id`` unset or empty: the
    whole type)."""
    actor_id = request.actor_id if request.HasField("actor_id") else None
    answer = actors_pb2.ListActorRemindersResponse()
    for name, found in await _runtime(services).list_reminders(request.actor_type, actor_id):
        reminder = actors_pb2.ActorReminder(actor_type=found["actorType"], actor_id=found["actorID"])
        _reminder(found, reminder)
        answer.reminders.add(name=name, reminder=reminder)
    return answer


def _timer(timer: Timer, answer: Any) -> None:
    """A running timer into ``answer`` (a GetActorTimerResponse or an ActorTimer: the same
    fields), unset where the timer has none, its data as daprd gives it: a BytesValue of the JSON."""
    schedule = timer.schedule
    for field, value in (("due_time", schedule.due_time), ("period", schedule.period),
                         ("callback", timer.callback)):  # fmt: skip
        if value:
            setattr(answer, field, value)
    if schedule.expires is not None:
        answer.ttl = rfc3339(schedule.expires)
    if timer.data is not None:
        answer.data.Pack(wrappers_pb2.BytesValue(value=timer.data))


async def get_timer(services: Services, request: Any, context: Context) -> actors_pb2.GetActorTimerResponse:
    timer = await _runtime(services).timer(request.actor_type, request.actor_id, request.name)
    answer = actors_pb2.GetActorTimerResponse(actor_type=request.actor_type, actor_id=request.actor_id)
    _timer(timer, answer)
    return answer


async def list_timers(
    services: Services, request: Any, context: Context
) -> actors_pb2.ListActorTimersResponse:
    answer = actors_pb2.ListActorTimersResponse()
    for timer in await _runtime(services).timers_of(request.actor_type, request.actor_id):
        described = actors_pb2.ActorTimer(actor_type=request.actor_type, actor_id=request.actor_id)
        _timer(timer, described)
        answer.timers.add(name=timer.name, timer=described)
    return answer


async def unregister_reminder(services: Services, request: Any, context: Context) -> empty_pb2.Empty:
    await _runtime(services).delete_reminder(request.actor_type, request.actor_id, request.name)
    return EMPTY


async def unregister_reminders_by_type(
    services: Services, request: Any, context: Context
) -> actors_pb2.UnregisterActorRemindersByTypeResponse:
    actor_id = request.actor_id if request.HasField("actor_id") else None
    await _runtime(services).delete_reminders(request.actor_type, actor_id)
    return actors_pb2.UnregisterActorRemindersByTypeResponse()


RPCS: dict[str, Unary] = {
    "InvokeActor": invoke_actor,
    "GetActorState": get_actor_state,
    "ExecuteActorStateTransaction": execute_actor_state_transaction,
    "RegisterActorTimer": register_timer,
    "UnregisterActorTimer": unregister_timer,
    "GetActorTimer": get_timer,
    "ListActorTimers": list_timers,
    "RegisterActorReminder": register_reminder,
    "GetActorReminder": get_reminder,
    "UnregisterActorReminder": unregister_reminder,
    "UnregisterActorRemindersByType": unregister_reminders_by_type,
    "ListActorReminders": list_reminders,
}
