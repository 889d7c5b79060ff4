"""Dapr's name and attributes for the server span of an HTTP API call (daprd's
``spanAttributesMapFromHTTPContext``): the span is named after the path (an invocation arriving
from another sidecar: ``CallLocal/{app}/{method}``, as daprd's callee names it), and carries
``dapr.api``, ``dapr.protocol``, ``dapr.status_code`` and, by building block, the database or
messaging attributes of OpenTelemetry's semantic conventions that daprd sets."""

from __future__ import annotations

from typing import Any

_STORES = {"state": "state", "secrets": "secrets", "bindings": "bindings"}


def server_span_name(path: str, forwarded: bool) -> str:
    """The span's name: the path, or ``CallLocal/{app}/{method}`` for a call another sidecar
    forwards to this one's app."""
    if forwarded and path.startswith("/v1.0/invoke/"):
        app, _, method = path[len("/v1.0/invoke/") :].partition("/method/")
        return f"CallLocal/{app}/{method}"
    return path


def server_span_attributes(method: str, path: str) -> dict[str, Any]:
    parts = path.split("/", 4)  # "", "v1.0", block, name, rest
    attributes: dict[str, Any] = {
        "dapr.api": f"{method} {path}",
        "dapr.protocol": "http",
        "http.request.method": method,
        "url.path": path,
    }
    if len(parts) < 4 or not parts[1].startswith("v1.0"):
        return attributes
    block, name = parts[2], parts[3]
    if block in _STORES:
        attributes["db.system"] = _STORES[block]
        attributes["db.name"] = name
        attributes["db.statement"] = f"{method} {path}"
        attributes["db.connection_string"] = _STORES[block]
    elif block == "invoke":
        attributes["rpc.service"] = "ServiceInvocation"
        attributes["net.peer.name"] = name
        if len(parts) == 5 and parts[4].startswith("method/"):
            attributes["dapr.invoke_method"] = parts[4][len("method/") :]
    elif block == "publish" and len(parts) == 5:
        attributes["messaging.system"] = "pubsub"
        attributes["messaging.destination"] = parts[4]
        attributes["messaging.destination_kind"] = "topic"
    return attributes
