"""A gRPC app for the tests: Dapr's ``AppCallback``, ``AppCallbackAlpha`` and
``AppCallbackHealthCheck`` served by grpcio's asyncio server in the test's loop, answering what a
test sets and recording every request with its metadata."""

from __future__ import annotations

from typing import Any

import grpc
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import appcallback_pb2, appcallback_pb2_grpc
from google.protobuf import any_pb2

from tests.servers import LOOPBACK

Status = appcallback_pb2.TopicEventResponse.TopicEventResponseStatus


class Recorder(
    appcallback_pb2_grpc.AppCallbackServicer,
    appcallback_pb2_grpc.AppCallbackAlphaServicer,
    appcallback_pb2_grpc.AppCallbackHealthCheckServicer,
):
    """A gRPC app whose answers a test sets; it keeps every request with its metadata."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, dict[str, str]]] = []
        self.topic_status = Status.SUCCESS
        self.error: grpc.StatusCode | None = None
        self.subscriptions: list[appcallback_pb2.TopicSubscription] = []
        self.bindings = ["tick"]
        self.binding_reply = appcallback_pb2.BindingEventResponse()
        """What ``OnBindingEvent`` answers besides its data (``to``, ``concurrency``, ``states``)."""
        self._server: grpc.aio.Server | None = None

    async def start(self, port: int = 0) -> int:
        """Serve on ``port`` (0: a free one); the port."""
        server = grpc.aio.server()
        appcallback_pb2_grpc.add_AppCallbackServicer_to_server(self, server)  # type: ignore[no-untyped-call]
        appcallback_pb2_grpc.add_AppCallbackAlphaServicer_to_server(self, server)  # type: ignore[no-untyped-call]
        appcallback_pb2_grpc.add_AppCallbackHealthCheckServicer_to_server(self, server)  # type: ignore[no-untyped-call]
        bound = server.add_insecure_port(f"{LOOPBACK}:{port}")
        await server.start()
        self._server = server
        return bound

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(None)

    def received(self, name: str) -> list[Any]:
        """The requests of the method ``name``, in order."""
        return [request for called, request, _ in self.calls if called == name]

    async def _record(self, name: str, request: Any, context: Any) -> None:
        self.calls.append((name, request, dict(context.invocation_metadata() or ())))
        if self.error is not None:
            await context.abort(self.error, f"{name} refused")

    async def OnInvoke(self, request: Any, context: Any) -> common_pb2.InvokeResponse:
        await self._record("OnInvoke", request, context)
        return common_pb2.InvokeResponse(
            data=any_pb2.Any(value=b"pong:" + request.data.value), content_type="text/x"
        )

    async def ListTopicSubscriptions(self, request: Any, context: Any) -> Any:
        await self._record("ListTopicSubscriptions", request, context)
        return appcallback_pb2.ListTopicSubscriptionsResponse(subscriptions=self.subscriptions)

    async def OnTopicEvent(self, request: Any, context: Any) -> Any:
        await self._record("OnTopicEvent", request, context)
        return appcallback_pb2.TopicEventResponse(status=self.topic_status)

    async def ListInputBindings(self, request: Any, context: Any) -> Any:
        await self._record("ListInputBindings", request, context)
        return appcallback_pb2.ListInputBindingsResponse(bindings=self.bindings)

    async def OnBindingEvent(self, request: Any, context: Any) -> Any:
        await self._record("OnBindingEvent", request, context)
        answer = appcallback_pb2.BindingEventResponse()
        answer.CopyFrom(self.binding_reply)
        if not answer.data:
            answer.data = b"ack:" + request.data
        return answer

    async def OnBulkTopicEventAlpha1(self, request: Any, context: Any) -> Any:
        await self._record("OnBulkTopicEventAlpha1", request, context)
        statuses = [
            appcallback_pb2.TopicEventBulkResponseEntry(
                entry_id=entry.entry_id, status=Status.DROP if entry.entry_id == "b" else Status.SUCCESS
            )
            for entry in request.entries
        ]
        return appcallback_pb2.TopicEventBulkResponse(statuses=statuses)

    async def OnJobEventAlpha1(self, request: Any, context: Any) -> Any:
        await self._record("OnJobEventAlpha1", request, context)
        return appcallback_pb2.JobEventResponse()

    async def HealthCheck(self, request: Any, context: Any) -> Any:
        await self._record("HealthCheck", request, context)
        return appcallback_pb2.HealthCheckResponse()
