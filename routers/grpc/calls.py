"""What every RPC of the gRPC API shares: the shape of a handler, and the call's metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeAlias

from services.sidecar import Services

Context: TypeAlias = Any
"""A call's ``grpc.aio.ServicerContext`` (grpcio ships no type information)."""
Unary = Callable[[Services, Any, Context], Awaitable[Any]]
"""An RPC's handler: (the sidecar's services, the request message, the call) -> the answer."""
Streaming = Callable[[Services, Any, Context], AsyncIterator[Any]]
"""A server-streaming RPC's handler: yields its answers."""


def call_metadata(context: Context) -> dict[str, str]:
    """The call's metadata (HTTP/2 headers) as a dict: text values only, the last of a repeated
    key. Binary (``-bin``) values are left out: component metadata holds strings."""
    found: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, str):
            found[key] = value
    return found


def string_map(values: Mapping[str, str]) -> dict[str, str]:
    """A message's ``map<string, string>`` as a plain dict (components keep and compare it)."""
    return dict(values)
