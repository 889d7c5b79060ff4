"""The bindings contract: Dapr's output bindings (the app calls out through a component) and input
bindings (a component's events reach the app), as components-contrib declares them.

A binding type may be either or both: :meth:`Binding.features` says which (``OUTPUT_BINDING``,
``INPUT_BINDING``, reported under those names in GET /v1.0/metadata), and a type claiming a
direction implements its Protocol, :class:`OutputBinding` or :class:`InputBinding`. The runtime
checks that at start-up, so a plug-in claiming a direction it does not implement fails there.

Edge cases every backend honours (tests/conformance/test_bindings_conformance.py proves them):

* ``operations()`` lists every operation ``invoke`` accepts; the runtime refuses any other with
  Dapr's message before the binding is called.
* ``invoke`` returns ``None`` when the operation has nothing to answer (the API answers 204) and an
  :class:`InvokeResponse` when it has, even with empty data (200). A failure raises
  :class:`BindingError` (its ``response`` carries metadata the caller still sees, such as an HTTP
  status) or :class:`~components.errors.BackendError` when the backend itself failed.
* ``read(handler)`` starts delivering in the background and returns a :class:`Reader` at once. The
  handler returning means the event is done (acknowledged where the source knows acknowledgements);
  the handler raising means it was not, and the binding retries or redelivers as its source
  allows (Kafka: the same offset again; cron: that tick is lost, as in Dapr).
* ``Reader.stop()`` and ``close()`` are idempotent; once ``stop()`` returns no handler call starts,
  and once ``close()`` returns every ``invoke`` fails.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from components.errors import ComponentError

_NO_METADATA: Mapping[str, str] = {}

CREATE = "create"
GET = "get"
DELETE = "delete"
LIST = "list"


class Feature(enum.StrEnum):
    """The directions a binding serves, under Dapr's capability names."""

    INPUT_BINDING = "INPUT_BINDING"
    OUTPUT_BINDING = "OUTPUT_BINDING"


@dataclass(slots=True, frozen=True)
class InvokeRequest:
    data: bytes
    """The request's ``data`` as ``json.Marshal`` wrote it: a JSON string arrives quoted."""
    metadata: Mapping[str, str] = field(default_factory=lambda: _NO_METADATA)
    operation: str = CREATE


@dataclass(slots=True, frozen=True)
class InvokeResponse:
    data: bytes = b""
    metadata: Mapping[str, str] = field(default_factory=lambda: _NO_METADATA)
    """Answered to the caller as ``metadata.<key>`` headers."""
    content_type: str | None = None
    """The answer's Content-Type; ``application/json`` when None, as in Dapr."""


class BindingError(ComponentError):
    """The operation failed; ``response`` is what the binding still has to say (an HTTP binding's
    status and headers), answered to the caller as headers beside the error."""

    def __init__(self, message: str, response: InvokeResponse | None = None) -> None:
        super().__init__(message)
        self.response = response


@dataclass(slots=True, frozen=True)
class ReadEvent:
    """One event an input binding hands to the app."""

    data: bytes
    metadata: Mapping[str, str] = field(default_factory=lambda: _NO_METADATA)
    """Sent to the app as HTTP headers."""


ReadHandler = Callable[[ReadEvent], Awaitable[bytes | None]]
"""Returns the app's answer (the event is done); raises when the app did not take it."""


class Reader(Protocol):
    """A running input binding."""

    async def stop(self) -> None: ...


class Binding(Protocol):
    """What every binding type shares (the registry checks it when the type loads)."""

    async def init(self, metadata: Mapping[str, str]) -> None:
        """Decode the metadata (MetadataError naming the field) and connect (ComponentInitError)."""

    def features(self) -> Collection[Feature]: ...

    async def close(self) -> None:
        """Stop reading and release every resource. Idempotent."""


class OutputBinding(Binding, Protocol):
    def operations(self) -> Sequence[str]: ...

    async def invoke(self, request: InvokeRequest) -> InvokeResponse | None: ...


class InputBinding(Binding, Protocol):
    async def read(self, handler: ReadHandler) -> Reader: ...
