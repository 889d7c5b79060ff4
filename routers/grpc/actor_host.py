"""The actor runtime's calls to an app that hosts its actors over the stream it opened
(``SubscribeActorEventsAlpha1``, routers/grpc/actor_stream.py), behind services/actors/host.py's
``ActorHost``, as daprd's pkg/actors/.../transport/grpc delivers them:

* a method call is an ``invoke_request`` (the method unescaped, the data, the call's headers as
  metadata, lower-case); the app's ``invoke_response`` comes back as the HTTP app's 200 with its
  metadata as headers, and one marked ``error`` carries ``X-Daprerrorresponseheader: true`` so the
  app's error payload reaches the caller verbatim;
* a reminder's or timer's tick (the runtime's ``remind/{name}`` and ``timer/{name}`` turns, whose
  body is Dapr's tick JSON) is a ``reminder_request`` / ``timer_request`` with the registered data
  as a ``google.protobuf.BytesValue`` of its JSON in an ``Any``; ``cancel`` reads as
  ``X-Daprremindercancel: true``;
* a deactivation is a ``deactivate_request``.

``request_failed`` is daprd's error: NOT_FOUND on a method call is "actor method not found",
anything else "error from actor service: <message>", both ``ERR_ACTOR_INVOKE_METHOD``. A stream
that is not open, or ends before the answer, raises ``AppUnreachable`` with daprd's words.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import grpc
import orjson
import structlog
from dapr.proto.runtime.v1 import actors_pb2
from google.protobuf import any_pb2, wrappers_pb2
from multidict import CIMultiDict, CIMultiDictProxy

from mesh.app_channel import AppResponse, AppUnreachable
from services import errors
from services.actors.app import CANCEL_HEADER, ERROR_HEADER
from services.actors.callbacks import HostDisconnected, HostNotConnected, HostStreams

log = structlog.get_logger(__name__)

Outgoing = actors_pb2.SubscribeActorEventsResponseAlpha1
"""daprd -> app: the initial response, then the requests."""
Incoming = actors_pb2.SubscribeActorEventsRequestAlpha1
"""app -> daprd: the initial request, then the answers."""
_NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
_TICKS = ("remind/", "timer/")
DEACTIVATE_TIMEOUT = 5.0
"""How long a deactivation waits for the app's answer: the activation ends anyway, and a hung app
must not hold up a sidecar's shutdown."""
_EMPTY = CIMultiDictProxy(CIMultiDict[str]())
_CANCELLED = CIMultiDictProxy(CIMultiDict({CANCEL_HEADER: "true"}))


def _metadata(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The call's headers as the request's metadata: lower-case names, the first of a repeated one
    (daprd's flattenFirstValue)."""
    found: dict[str, str] = {}
    for name, value in headers:
        found.setdefault(name.lower(), value)
    return found


def _data(value: Any) -> any_pb2.Any:
    """A reminder's or timer's data as daprd stores it: its JSON in a ``BytesValue``."""
    packed = any_pb2.Any()
    packed.Pack(wrappers_pb2.BytesValue(value=orjson.dumps(value)))
    return packed


def _failed(message: Incoming, method: str | None) -> errors.ApiError:
    failed = message.request_failed
    if method is not None and failed.code == _NOT_FOUND:
        return errors.actor_invoke_failed(f"actor method not found: {method}")
    return errors.actor_invoke_failed(f"error from actor service: {failed.message}")


class StreamedActorHost:
    """The app's actors over its host streams (``streams``: the open ones, the newest serving)."""

    def __init__(self, *, app_port: bool = False, timeout: float | None = None) -> None:
        self.streams: HostStreams[Outgoing, Incoming] = HostStreams()
        self._app_port = app_port
        self.timeout = timeout
        """The deadline of one call (None: none, as daprd's actor calls)."""

    @property
    def configured(self) -> bool:
        """A gRPC app's sidecar waits for its stream (INITIALIZING); one with no app port hosts
        nothing until an app opens one (DISABLED)."""
        return self._app_port

    async def _send(self, build: Any, timeout: float | None = None) -> Incoming:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout if timeout is not None else self.timeout):
                answer: Incoming = await self.streams.send(build)
                return answer
        except (HostNotConnected, HostDisconnected) as exc:
            raise AppUnreachable(str(exc)) from None
        except TimeoutError:
            raise AppUnreachable("the actor host did not answer in time") from None

    async def invoke(
        self,
        actor_type: str,
        actor_id: str,
        method: str,
        *,
        query: str = "",
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> AppResponse:
        if method.startswith(_TICKS):
            kind, _, name = method.partition("/")
            return await self.fire(actor_type, actor_id, kind, unquote(name), body, headers)
        name = unquote(method)
        metadata = _metadata(headers)

        def build(request_id: str) -> Outgoing:
            return Outgoing(
                invoke_request=actors_pb2.SubscribeActorEventsResponseInvokeRequestAlpha1(
                    id=request_id,
                    actor_type=actor_type,
                    actor_id=actor_id,
                    method=name,
                    data=body,
                    metadata=metadata,
                )
            )

        message = await self._send(build)
        answered = message.WhichOneof("request_type")
        if answered == "request_failed":
            raise _failed(message, name)
        if answered != "invoke_response":
            raise errors.actor_invoke_failed("actor host returned an unexpected response type for invoke")
        answer = message.invoke_response
        received = CIMultiDict[str](answer.metadata)
        if answer.error:
            received[ERROR_HEADER] = "true"
        return AppResponse(200, CIMultiDictProxy(received), answer.data)

    async def fire(
        self,
        actor_type: str,
        actor_id: str,
        kind: str,
        name: str,
        body: bytes,
        headers: Sequence[tuple[str, str]] = (),
    ) -> AppResponse:
        """A tick; ``body`` is Dapr's tick JSON (``dueTime``, ``period``, ``data``, a timer's
        ``callback``), read back into the request's fields."""
        tick = orjson.loads(body) if body else {}
        data = tick.get("data")
        fields: dict[str, Any] = {
            "actor_type": actor_type,
            "actor_id": actor_id,
            "name": name,
            "due_time": tick.get("dueTime") or "",
            "period": tick.get("period") or "",
            "metadata": {k: v for k, v in _metadata(headers).items() if k != "content-type"},
        }
        if data is not None:
            fields["data"] = _data(data)
        timer = kind == "timer"
        if timer:
            fields["callback"] = tick.get("callback") or ""

        def build(request_id: str) -> Outgoing:
            if timer:
                return Outgoing(
                    timer_request=actors_pb2.SubscribeActorEventsResponseTimerRequestAlpha1(
                        id=request_id, **fields
                    )
                )
            return Outgoing(
                reminder_request=actors_pb2.SubscribeActorEventsResponseReminderRequestAlpha1(
                    id=request_id, **fields
                )
            )

        message = await self._send(build)
        found = message.WhichOneof("request_type")
        if found == "request_failed":
            raise _failed(message, None)
        if found != ("timer_response" if timer else "reminder_response"):
            raise errors.actor_invoke_failed(
                f"actor host returned an unexpected response type for {'timer' if timer else 'reminder'}"
            )
        answer = message.timer_response if timer else message.reminder_response
        return AppResponse(200, _CANCELLED if answer.cancel else _EMPTY, b"")

    async def deactivate(self, actor_type: str, actor_id: str) -> None:
        def build(request_id: str) -> Outgoing:
            return Outgoing(
                deactivate_request=actors_pb2.SubscribeActorEventsResponseDeactivateRequestAlpha1(
                    id=request_id, actor_type=actor_type, actor_id=actor_id
                )
            )

        try:
            message = await self._send(build, DEACTIVATE_TIMEOUT)
        except AppUnreachable as exc:
            log.warning("the app did not take the deactivation", actor_type=actor_type, error=str(exc))
            return
        if message.WhichOneof("request_type") == "request_failed":
            log.warning(
                "the app refused the deactivation",
                actor_type=actor_type,
                actor_id=actor_id,
                error=message.request_failed.message,
            )
