"""The app channel of a gRPC app (``--app-protocol grpc``): l8 calls the app's
``dapr.proto.runtime.v1.AppCallback`` (``AppCallbackHealthCheck``, ``AppCallbackAlpha`` for bulk)
service on ``--app-port``, as daprd does, behind mesh/app_channel.py's ``AppConnection``.

Every answer comes back in the HTTP contract's shape (routers/grpc/app_events.py builds the
messages and the bodies): ``ListTopicSubscriptions`` as ``/dapr/subscribe``'s array,
``OnTopicEvent``'s SUCCESS/RETRY/DROP as ``{"status": ...}``, an ``OnInvoke`` error as daprd's
HTTP status of the gRPC code with the ``google.rpc.Status`` JSON as body. A call the app does not
implement (UNIMPLEMENTED) is what daprd makes of it: no subscriptions, no input bindings, an event
acknowledged. A call that cannot reach the app (UNAVAILABLE, the deadline passed) raises
``AppUnreachable``: a delivery is then retried.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import grpc
import orjson
import structlog
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import appcallback_pb2, appcallback_pb2_grpc
from google.protobuf import any_pb2, empty_pb2
from multidict import CIMultiDict, CIMultiDictProxy

from mesh.app_channel import AppResponse, AppUnreachable, port_open
from routers.grpc import app_events
from routers.grpc.app_events import EventUnreadable

log = structlog.get_logger(__name__)

_UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# daprd's HTTPStatusFromCode (pkg/messaging/v1): the HTTP status of an invoked gRPC app's code.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 408,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
_VERBS: dict[str, Any] = dict(common_pb2.HTTPExtension.Verb.items())
# Headers that describe the HTTP connection or that gRPC sets itself: not metadata of the call.
_NOT_METADATA = frozenset(
    {
        "content-type",
        "content-length",
        "connection",
        "keep-alive",
        "host",
        "te",
        "transfer-encoding",
        "upgrade",
    }
)
_METADATA_KEY = re.compile(r"[0-9a-z_.\-]+")
_JSON = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))
_EMPTY = CIMultiDictProxy(CIMultiDict[str]())


class GrpcAppChannel:
    def __init__(
        self,
        app_id: str,
        port: int | None,
        *,
        address: str = "127.0.0.1",
        token: str | None = None,
        max_message_size: int | None = None,
    ) -> None:
        self.app_id = app_id
        self.port = port
        self.address = address
        self.base_url = f"grpc://{address}:{port}" if port is not None else None
        self._token = token
        self._max_message_size = max_message_size
        self._channel: grpc.aio.Channel | None = None
        self._callback: appcallback_pb2_grpc.AppCallbackStub | None = None
        self._alpha: appcallback_pb2_grpc.AppCallbackAlphaStub | None = None
        self._health: appcallback_pb2_grpc.AppCallbackHealthCheckStub | None = None

    @property
    def configured(self) -> bool:
        return self.port is not None

    async def start(self) -> None:
        if self._channel is not None or self.port is None:
            return
        options: list[tuple[str, Any]] = []
        if self._max_message_size is not None:
            options += [
                ("grpc.max_send_message_length", self._max_message_size),
                ("grpc.max_receive_message_length", self._max_message_size),
            ]
        # Connecting is lazy: the app may start after l8.
        self._channel = grpc.aio.insecure_channel(f"{self.address}:{self.port}", options=options)
        self._callback = appcallback_pb2_grpc.AppCallbackStub(self._channel)  # type: ignore[no-untyped-call]
        self._alpha = appcallback_pb2_grpc.AppCallbackAlphaStub(self._channel)  # type: ignore[no-untyped-call]
        self._health = appcallback_pb2_grpc.AppCallbackHealthCheckStub(self._channel)  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    def _app(self) -> appcallback_pb2_grpc.AppCallbackStub:
        if self._callback is None:
            raise AppUnreachable("no app channel: l8 was started without --app-port")
        return self._callback

    def _metadata(self, headers: Mapping[str, str] | None) -> list[tuple[str, str]]:
        """The headers as the call's metadata (lower-case names; gRPC's own left out) and the app
        token when APP_API_TOKEN is set."""
        metadata: list[tuple[str, str]] = []
        for name, value in (headers or {}).items():
            key = name.lower()
            if key in _NOT_METADATA or key.startswith(("grpc-", ":")) or key == "dapr-api-token":
                continue
            # gRPC's ASCII metadata: a binary (-bin) entry or a value it cannot carry is left out.
            if key.endswith("-bin") or not _METADATA_KEY.fullmatch(key) or not value.isascii():
                continue
            metadata.append((key, value))
        if self._token is not None:
            metadata.append(("dapr-api-token", self._token))
        return metadata

    async def _call(
        self,
        rpc: Any,
        request: Any,
        headers: Mapping[str, str] | None,
        timeout: float | None,  # noqa: ASYNC109 - the call's deadline, grpcio's own
    ) -> Any:
        """One call; the app's own error statuses come back as ``grpc.aio.AioRpcError``, a call that
        did not reach it as :class:`AppUnreachable`."""
        try:
            return await rpc(request, metadata=self._metadata(headers), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _UNREACHABLE:
                raise AppUnreachable(f"app at {self.base_url} did not answer: {exc.details()}") from None
            raise

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the whole call's deadline
    ) -> AppResponse:
        """``OnInvoke``: the method (``path`` without its leading ``/`` and query), the body as the
        data, the HTTP verb and query string in ``http_extension``. The data and content type come
        back; an error status becomes daprd's HTTP status with the status as JSON."""
        target, _, query = path.lstrip("/").partition("?")
        content_type = next((v for k, v in (headers or {}).items() if k.lower() == "content-type"), "")
        request = common_pb2.InvokeRequest(
            method=target,
            data=any_pb2.Any(value=body or b""),
            content_type=content_type,
            http_extension=common_pb2.HTTPExtension(
                verb=_VERBS.get(method.upper(), _VERBS["POST"]), querystring=query
            ),
        )
        try:
            answer = await self._call(self._app().OnInvoke, request, headers, timeout)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            status = {"code": code.value[0], "message": exc.details() or "", "details": []}
            return AppResponse(HTTP_STATUS.get(code, 500), _JSON, orjson.dumps(status))
        received = CIMultiDict[str]()
        if answer.content_type:
            received["Content-Type"] = answer.content_type
        return AppResponse(200, CIMultiDictProxy(received), answer.data.value)

    async def read_subscriptions(self, headers: Mapping[str, str], timeout: float) -> AppResponse:  # noqa: ASYNC109
        try:
            answer = await self._call(self._app().ListTopicSubscriptions, empty_pb2.Empty(), None, timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.UNIMPLEMENTED:
                return AppResponse(404, _EMPTY, b"")
            log.error("the app's ListTopicSubscriptions failed", code=exc.code().name, error=exc.details())
            return AppResponse(HTTP_STATUS.get(exc.code(), 500), _EMPTY, b"")
        return AppResponse(200, _JSON, app_events.subscriptions_json(answer))

    async def deliver_event(
        self, path: str, body: bytes, headers: Mapping[str, str], topic: str = ""
    ) -> AppResponse:
        """``OnTopicEvent``; the app's SUCCESS/RETRY/DROP as ``{"status": ...}``. UNIMPLEMENTED
        acknowledges the event (daprd drops it without a dead letter); any other error is retried."""
        pubsub = next((v for k, v in headers.items() if k.lower() == "pubsubname"), "")
        try:
            request = app_events.topic_event(body, path, pubsub, topic)
        except EventUnreadable as exc:
            # daprd drops an event it cannot hand to a gRPC app (the HTTP delivery's 404 outcome).
            log.error("event not delivered to the gRPC app", path=path, error=str(exc))
            return AppResponse(404, _EMPTY, str(exc).encode())
        try:
            answer = await self._call(self._app().OnTopicEvent, request, headers, None)
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.UNIMPLEMENTED:
                log.warning("the gRPC app does not implement OnTopicEvent; event acknowledged", id=request.id)
                return AppResponse(200, _JSON, b'{"status":"SUCCESS"}')
            return AppResponse(500, _EMPTY, f"{exc.code().name}: {exc.details()}".encode())
        return AppResponse(200, _JSON, app_events.topic_answer(answer))

    async def deliver_bulk(self, path: str, body: bytes, headers: Mapping[str, str]) -> AppResponse:
        """``OnBulkTopicEventAlpha1``; the entries' statuses as ``{"statuses": [...]}``."""
        if self._alpha is None:
            raise AppUnreachable("no app channel: l8 was started without --app-port")
        try:
            request = app_events.bulk_event(body, path)
        except (EventUnreadable, ValueError) as exc:
            return AppResponse(404, _EMPTY, str(exc).encode())
        try:
            answer = await self._call(self._alpha.OnBulkTopicEventAlpha1, request, headers, None)
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.UNIMPLEMENTED:
                return AppResponse(200, _JSON, app_events.bulk_all(body, "SUCCESS"))
            return AppResponse(500, _EMPTY, f"{exc.code().name}: {exc.details()}".encode())
        return AppResponse(200, _JSON, app_events.bulk_answer(answer))

    async def binding_wanted(self, name: str, route: str, timeout: float) -> AppResponse:  # noqa: ASYNC109
        """``ListInputBindings``: 200 when it names the binding, 404 otherwise."""
        try:
            answer = await self._call(self._app().ListInputBindings, empty_pb2.Empty(), None, timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() is not grpc.StatusCode.UNIMPLEMENTED:
                log.error("the app's ListInputBindings failed", code=exc.code().name, error=exc.details())
            return AppResponse(404, _EMPTY, b"")
        return AppResponse(200 if name in answer.bindings else 404, _EMPTY, b"")

    async def deliver_binding(
        self, name: str, route: str, body: bytes, headers: Mapping[str, str]
    ) -> AppResponse:
        """``OnBindingEvent`` with the event's data and metadata; the answer's data comes back."""
        metadata = {
            k: v for k, v in headers.items() if k.lower() not in ("content-type", "traceparent", "tracestate")
        }
        trace = {k: v for k, v in headers.items() if k.lower() in ("traceparent", "tracestate")}
        request = appcallback_pb2.BindingEventRequest(name=name, data=body, metadata=metadata)
        try:
            answer = await self._call(self._app().OnBindingEvent, request, trace, None)
        except grpc.aio.AioRpcError as exc:
            return AppResponse(HTTP_STATUS.get(exc.code(), 500), _EMPTY, (exc.details() or "").encode())
        return AppResponse(200, _EMPTY, answer.data, app_events.binding_answer(answer))

    async def deliver_job(self, name: str, data: bytes, timeout: float | None) -> AppResponse:  # noqa: ASYNC109
        """``AppCallbackAlpha.OnJobEventAlpha1``, as daprd triggers a job: the name, the data, the
        method ``job/{name}`` with verb POST. UNIMPLEMENTED (no handler for the job) reads as the
        HTTP app's 404."""
        if self._alpha is None:
            raise AppUnreachable("no app channel: l8 was started without --app-port")
        request = appcallback_pb2.JobEventRequest(
            name=name,
            data=any_pb2.Any(value=data),
            method="job/" + name,
            content_type="application/json",
            http_extension=common_pb2.HTTPExtension(verb=_VERBS["POST"]),
        )
        try:
            await self._call(self._alpha.OnJobEventAlpha1, request, None, timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.UNIMPLEMENTED:
                return AppResponse(404, _EMPTY, b"")
            return AppResponse(HTTP_STATUS.get(exc.code(), 500), _EMPTY, (exc.details() or "").encode())
        return AppResponse(200, _EMPTY, b"")

    async def probe(self, path: str, timeout: float) -> int:  # noqa: ASYNC109 - the probe's deadline
        """``AppCallbackHealthCheck.HealthCheck`` (no app token, as daprd's probe): 200 on success,
        the HTTP status of the app's error code otherwise."""
        if self._health is None:
            raise AppUnreachable("no app channel: l8 was started without --app-port")
        try:
            await self._health.HealthCheck(empty_pb2.Empty(), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _UNREACHABLE:
                raise AppUnreachable(f"app at {self.base_url} did not answer its health check") from None
            return HTTP_STATUS.get(exc.code(), 500)
        return 200

    async def listening(self, timeout: float = 0.5) -> bool:  # noqa: ASYNC109 - a connect deadline
        if self.port is None:
            return False
        return await port_open(self.address, self.port, timeout)
