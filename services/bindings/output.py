"""Output bindings: ``POST|PUT /v1.0/bindings/{name}`` as daprd runs it (reference section 6.1).

The body is decoded (services/bindings/requests.py), the trace context added to the metadata, the
operation checked against the binding's list, and the binding invoked under its component's
outbound Resiliency policy. Dapr's checks come in its order: the operation is required before the
binding is looked up. An operation is never assumed idempotent (a ``create`` may append to a topic
or a table), so a call that may have been applied is not resent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from components.bindings.base import BindingError, InvokeRequest, InvokeResponse, OutputBinding
from components.errors import ComponentError
from components.loaded import LoadedComponent
from mesh.resiliency import NO_POLICY, Outbound, OutboundFor, no_policy
from services import errors
from services.bindings.requests import output_request
from services.trace_context import TraceContext

METADATA_HEADER_PREFIX = "metadata."


@dataclass(slots=True, frozen=True)
class OutputBindingHandle:
    name: str
    binding: OutputBinding
    operations: tuple[str, ...]
    outbound: Outbound = NO_POLICY


@dataclass(slots=True, frozen=True)
class TraceHeaders:
    """The caller's ``traceparent``, ``tracestate`` and ``baggage`` headers, as given."""

    traceparent: str | None = None
    tracestate: str | None = None
    baggage: str | None = None

    def metadata(self) -> dict[str, str]:
        """What daprd adds to the binding's metadata: the span it works in, and the baggage."""
        found = TraceContext.from_headers(self.traceparent, self.tracestate).headers()
        if self.baggage:
            found["baggage"] = self.baggage
        return found


def answer_headers(response: InvokeResponse | None) -> dict[str, str]:
    """A binding's answer metadata as the caller sees it: ``metadata.<key>`` headers."""
    if response is None or not response.metadata:
        return {}
    return {f"{METADATA_HEADER_PREFIX}{key}": value for key, value in response.metadata.items()}


class OutputBindings:
    def __init__(self, bindings: Mapping[str, OutputBindingHandle]) -> None:
        self._bindings = dict(bindings)

    @classmethod
    def from_components(
        cls, components: Iterable[LoadedComponent], outbound: OutboundFor = no_policy
    ) -> OutputBindings:
        """The components serving the output direction (see services/bindings/directions.py)."""
        handles = {}
        for component in components:
            binding: OutputBinding = component.instance
            operations = tuple(str(operation) for operation in binding.operations())
            handles[component.name] = OutputBindingHandle(
                component.name, binding, operations, outbound(component)
            )
        return cls(handles)

    @property
    def names(self) -> list[str]:
        return list(self._bindings)

    async def invoke(
        self, name: str, body: Any, trace: TraceHeaders = TraceHeaders()
    ) -> InvokeResponse | None:
        """The binding's answer (None: nothing to answer, 204) for a decoded request body."""
        data, metadata, operation = output_request(body)
        metadata.update(trace.metadata())
        return await self.invoke_request(name, data, metadata, operation)

    async def invoke_request(
        self, name: str, data: bytes, metadata: dict[str, str], operation: str
    ) -> InvokeResponse | None:
        """The binding's answer for a decoded request (gRPC's InvokeBinding builds it from its
        message); ``metadata`` already holds the trace context."""
        if not operation:
            raise errors.invoke_output_binding_failed(name, "operation field is missing from request")
        handle = self._bindings.get(name)
        if handle is None:
            raise errors.invoke_output_binding_failed(name, f"couldn't find output binding {name}")
        if operation not in handle.operations:
            supported = " ".join(handle.operations)
            raise errors.invoke_output_binding_failed(
                name,
                f"binding {name} does not support operation {operation}. supported operations:{supported}",
            )
        request = InvokeRequest(data, metadata, operation)
        try:
            return await handle.outbound.call_non_idempotent(handle.binding.invoke, request)
        except BindingError as exc:
            raise errors.invoke_output_binding_failed(name, exc, answer_headers(exc.response)) from exc
        except ComponentError as exc:
            raise errors.invoke_output_binding_failed(name, exc) from exc
