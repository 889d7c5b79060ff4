"""Dapr's name and attributes for the span of an HTTP API call, as daprd's tracing middleware makes
them (``pkg/diagnostics/http_tracing.go`` ``spanAttributesMapFromHTTPContext`` and each endpoint
group's ``AppendSpanAttributes`` in ``pkg/api/http``):

- the span is named after the path, except service invocation: ``CallLocal/{app}/{method}``
  (the caller's daprd names its API span so; the callee's names its span the same way);
- always ``dapr.protocol: http``, ``dapr.api: "{METHOD} {path}"`` and, when the answer is known,
  ``dapr.status_code`` (a string, as daprd's map of strings writes it), plus every ``dapr-*``
  request header under its lower-case name;
- state, secrets, bindings: ``db.system`` and ``db.connection_string`` (the block), ``db.name``
  (the component), ``db.statement`` (``"{METHOD} {path}"``);
- invoke: ``rpc.service: ServiceInvocation``, ``net.peer.name`` (the target app); on the callee,
  ``dapr.invoke_method`` instead of ``net.peer.name``;
- publish (and bulk publish): ``messaging.system: pubsub``, ``messaging.destination.name`` (topic).

daprd's HTTP API span is of kind CLIENT (``startTracingClientSpanFromHTTPRequest``); the callee's
span of a forwarded invocation is a SERVER span (its gRPC server interceptor)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_STORES = frozenset({"state", "secrets", "bindings"})
_INVOKE = "/v1.0/invoke/"


def _invocation(path: str) -> tuple[str, str] | None:
    """(app, method) of an invoke path, as daprd's ``findTargetIDAndMethod`` splits it."""
    if not path.startswith(_INVOKE):
        return None
    app, found, method = path[len(_INVOKE) :].partition("/method/")
    return (app, method) if found and app else None


def server_span_name(path: str, forwarded: bool) -> str:
    """The span's name: ``CallLocal/{app}/{method}`` for an invocation (on both sidecars), else
    the path."""
    invocation = _invocation(path)
    if invocation is not None:
        return f"CallLocal/{invocation[0]}/{invocation[1]}"
    return path


def server_span_attributes(
    method: str, path: str, forwarded: bool = False, headers: Iterable[tuple[bytes, bytes]] = ()
) -> dict[str, Any]:
    """The attributes known when the call arrives (``dapr.status_code`` is added when it ends)."""
    attributes: dict[str, Any] = {}
    for name, value in headers:
        if name.startswith(b"dapr-") and name != b"dapr-api-token":
            attributes[name.decode("latin-1")] = value.decode("latin-1")
    api = f"{method} {path}"
    parts = path.split("/", 4)  # "", "v1.0", block, name, rest
    block = parts[2] if len(parts) > 3 and parts[1].startswith("v1.0") else ""
    if block in _STORES and parts[3]:
        attributes["db.system"] = block
        attributes["db.connection_string"] = block
        attributes["db.statement"] = api
        attributes["db.name"] = parts[3]
    elif block == "invoke" and (invocation := _invocation(path)) is not None:
        attributes["rpc.service"] = "ServiceInvocation"
        if forwarded:
            attributes["dapr.invoke_method"] = invocation[1]
        else:
            attributes["net.peer.name"] = invocation[0]
    elif block == "publish" and len(parts) == 5:
        topic = parts[4]
        if parts[3] == "bulk":  # /v1.0-alpha1/publish/bulk/{pubsub}/{topic}
            topic = topic.partition("/")[2]
        if topic:
            attributes["messaging.system"] = "pubsub"
            attributes["messaging.destination.name"] = topic
    attributes["dapr.protocol"] = "http"
    attributes["dapr.api"] = api
    return attributes
