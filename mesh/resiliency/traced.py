"""A component's outbound calls with a span each, when tracing is on: ``{block}/{operation}``
(``state/get``, ``lock/try_lock``), a client span under the API call's server span, carrying the
component's name. With tracing off the runtime hands out the plain :class:`Outbound`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from mesh.resiliency.outbound import Outbound

if TYPE_CHECKING:
    from observability.tracing.tracer import Tracer

T = TypeVar("T")


class TracedOutbound(Outbound):
    __slots__ = ("_attributes", "_block", "_tracer")

    def __init__(self, inner: Outbound, block: str, tracer: Tracer) -> None:
        super().__init__(inner.name, inner.policy, inner.deadline)
        self._block = block
        self._tracer = tracer
        self._attributes = {"db.system": block, "db.name": inner.name, "dapr.component": inner.name}

    async def call(self, operation: Callable[..., Awaitable[T]], *args: Any) -> T:
        with self._tracer.span(self._name(operation), "client", self._attributes):
            return await super().call(operation, *args)

    async def call_non_idempotent(self, operation: Callable[..., Awaitable[T]], *args: Any) -> T:
        with self._tracer.span(self._name(operation), "client", self._attributes):
            return await super().call_non_idempotent(operation, *args)

    def _name(self, operation: Callable[..., Any]) -> str:
        return f"{self._block}/{getattr(operation, '__name__', 'call')}"
