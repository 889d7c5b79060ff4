"""InvokeBinding over services/bindings/output.py, as ``POST /v1.0/bindings/{name}`` uses it: the
call's ``traceparent``/``tracestate``/``baggage`` metadata go into the binding's metadata."""

from __future__ import annotations

from typing import Any

from dapr.proto.runtime.v1 import binding_pb2

from routers.grpc.calls import Context, Unary, call_metadata, string_map
from services.bindings.output import TraceHeaders
from services.sidecar import Services


async def invoke_binding(
    services: Services, request: Any, context: Context
) -> binding_pb2.InvokeBindingResponse:
    headers = call_metadata(context)
    trace = TraceHeaders(headers.get("traceparent"), headers.get("tracestate"), headers.get("baggage"))
    metadata = string_map(request.metadata)
    metadata.update(trace.metadata())
    answer = await services.bindings.output.invoke_request(
        request.name, request.data, metadata, request.operation
    )
    if answer is None:
        return binding_pb2.InvokeBindingResponse()
    return binding_pb2.InvokeBindingResponse(data=answer.data, metadata=dict(answer.metadata or {}))


RPCS: dict[str, Unary] = {"InvokeBinding": invoke_binding}
