"""What a subscription is: the model shared by discovery, routing, delivery and the metadata API.

Parsers for the two sources (the app's ``GET /dapr/subscribe`` answer and ``Subscription``
resources) build these values.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

_NO_METADATA: Mapping[str, str] = {}

# Dapr's defaults for bulkSubscribe (pkg/runtime/pubsub/bulksub_default.go).
DEFAULT_BULK_MAX_MESSAGES = 100
DEFAULT_BULK_MAX_AWAIT_MS = 1000


class SubscriptionType(enum.StrEnum):
    DECLARATIVE = "DECLARATIVE"
    PROGRAMMATIC = "PROGRAMMATIC"
    STREAMING = "STREAMING"


@dataclass(slots=True, frozen=True)
class Rule:
    """Deliver to ``path`` when the CEL expression ``match`` holds for ``event`` (empty: always)."""

    match: str
    path: str


@dataclass(slots=True, frozen=True)
class BulkSubscribe:
    enabled: bool = False
    max_messages_count: int = DEFAULT_BULK_MAX_MESSAGES
    max_await_duration_ms: int = DEFAULT_BULK_MAX_AWAIT_MS


@dataclass(slots=True, frozen=True)
class Subscription:
    pubsub: str
    topic: str
    rules: tuple[Rule, ...]
    """In evaluation order; the default route (``routes.default`` or v1 ``route``) is the last rule,
    with an empty match."""
    type: SubscriptionType
    metadata: Mapping[str, str] = field(default_factory=lambda: _NO_METADATA)
    dead_letter_topic: str = ""
    bulk: BulkSubscribe = field(default_factory=BulkSubscribe)
    name: str = ""
    """The resource's metadata.name (declarative only)."""

    @property
    def key(self) -> tuple[str, str]:
        """One subscription per (pubsub, topic): a later duplicate is ignored, as in Dapr."""
        return (self.pubsub, self.topic)


def route_path(path: str) -> str:
    """A route as the app is called on: Dapr accepts ``orders`` and delivers to ``/orders``."""
    return path if path.startswith("/") else "/" + path


def match_error(expression: str) -> str | None:
    """Why a rule's CEL ``match`` cannot be used, or ``None`` when it compiles (empty: always)."""
    if not expression.strip():
        return None
    import celpy  # 50 ms of import: only apps with routing rules pay it
    import celpy.celparser

    try:
        celpy.Environment().compile(expression)
    except celpy.celparser.CELParseError as exc:
        # cel-python's message is the expression with a caret under it: report the position instead.
        where = f" at column {exc.column}" if exc.column is not None else ""
        return f"invalid CEL expression {expression!r}: syntax error{where}"
    return None


def metadata_text(value: object) -> str | None:
    """A subscription metadata value as Dapr's string map holds it: strings as they are, other
    scalars in their JSON spelling (``true``, ``3``, ``1.5``), null as empty; ``None`` for a list or
    a mapping, which has no string form."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return None
