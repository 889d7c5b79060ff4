"""Programmatic subscriptions: the app's answer to ``GET /dapr/subscribe``, read the lenient way
Dapr reads it.

What Dapr does and l8 keeps: an empty body means no subscriptions; ``null`` fields count as absent;
``routes.rules`` in order, then ``routes.default`` (or the v1 ``route`` when there is no default) as
the last, match-always rule; paths without a leading ``/`` get one; a subscription with no route at
all is dropped with a warning; metadata values that are not strings (the JS SDK sends whatever the
app wrote) are kept in their JSON spelling.

Where l8 is more lenient than Dapr, which rejects the whole answer on any type mismatch: one bad
element (no ``pubsubname`` or ``topic``, a field of the wrong type, a CEL ``match`` that does not
compile) is skipped with an error log and the others are kept. A later element for a (pubsub, topic)
already seen is ignored with a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import structlog

from services.pubsub.subscriptions import (
    DEFAULT_BULK_MAX_AWAIT_MS,
    DEFAULT_BULK_MAX_MESSAGES,
    BulkSubscribe,
    Rule,
    Subscription,
    SubscriptionType,
    match_error,
    metadata_text,
    route_path,
)

log = structlog.get_logger(__name__)


class _Invalid(Exception):
    """One element of the app's answer cannot be used; the message names the field."""


def parse_programmatic(body: bytes) -> list[Subscription]:
    """The subscriptions in a ``GET /dapr/subscribe`` body (a JSON array). Never raises: what cannot
    be used is logged and left out, so a broken answer means fewer subscriptions, not a failed start."""
    if not body.strip():
        return []
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        log.error("app's /dapr/subscribe answer is not JSON; no programmatic subscriptions", error=str(exc))
        return []
    if items is None:
        return []
    if not isinstance(items, list):
        log.error(
            "app's /dapr/subscribe answer is not a JSON array; no programmatic subscriptions",
            got=type(items).__name__,
        )
        return []
    subscriptions: dict[tuple[str, str], Subscription] = {}
    for index, item in enumerate(items):
        try:
            subscription = _subscription(item)
        except _Invalid as exc:
            log.error("subscription from the app skipped", index=index, reason=str(exc))
            continue
        if not subscription.rules:
            log.warning(
                "subscription from the app has no route; skipped",
                pubsub=subscription.pubsub,
                topic=subscription.topic,
            )
            continue
        if subscription.key in subscriptions:
            log.warning(
                "duplicate subscription from the app ignored; the first one is kept",
                pubsub=subscription.pubsub,
                topic=subscription.topic,
            )
            continue
        subscriptions[subscription.key] = subscription
    return list(subscriptions.values())


def _subscription(item: Any) -> Subscription:
    if not isinstance(item, dict):
        raise _Invalid(f"each element must be a JSON object, got {type(item).__name__}")
    pubsub = _text(item, "pubsubname")
    topic = _text(item, "topic")
    if not pubsub:
        raise _Invalid("pubsubname is missing")
    if not topic:
        raise _Invalid(f"topic is missing (pubsubname {pubsub!r})")
    return Subscription(
        pubsub=pubsub,
        topic=topic,
        rules=_rules(item),
        type=SubscriptionType.PROGRAMMATIC,
        metadata=_metadata(item.get("metadata")),
        dead_letter_topic=_text(item, "deadLetterTopic"),
        bulk=_bulk(item.get("bulkSubscribe")),
    )


def _rules(item: Mapping[str, Any]) -> tuple[Rule, ...]:
    routes = item.get("routes")
    if routes is None:
        routes = {}
    if not isinstance(routes, dict):
        raise _Invalid("routes must be an object with rules and default")
    raw_rules = routes.get("rules")
    if raw_rules is None:
        raw_rules = []
    if not isinstance(raw_rules, list):
        raise _Invalid("routes.rules must be an array")
    rules: list[Rule] = []
    for position, raw in enumerate(raw_rules):
        where = f"routes.rules[{position}]"
        if not isinstance(raw, dict):
            raise _Invalid(f"{where} must be an object with match and path")
        match = _text(raw, "match", where).strip()
        error = match_error(match)
        if error is not None:
            raise _Invalid(f"{where}.match: {error}")
        rules.append(Rule(match=match, path=route_path(_text(raw, "path", where))))
    default = _text(routes, "default", "routes") or _text(item, "route")
    if default:
        rules.append(Rule(match="", path=route_path(default)))
    return tuple(rules)


def _metadata(raw: Any) -> Mapping[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _Invalid("metadata must be an object of strings")
    values: dict[str, str] = {}
    for name, value in raw.items():
        text = metadata_text(value)
        # A nested value has no string form in Dapr's map; its JSON text is what a string-typed
        # SDK would have sent.
        values[name] = text if text is not None else orjson.dumps(value).decode()
    return values


def _bulk(raw: Any) -> BulkSubscribe:
    if raw is None:
        return BulkSubscribe()
    if not isinstance(raw, dict):
        raise _Invalid("bulkSubscribe must be an object")
    enabled = raw.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise _Invalid("bulkSubscribe.enabled must be true or false")
    return BulkSubscribe(
        enabled=bool(enabled),
        max_messages_count=_count(raw, "maxMessagesCount", DEFAULT_BULK_MAX_MESSAGES),
        max_await_duration_ms=_count(raw, "maxAwaitDurationMs", DEFAULT_BULK_MAX_AWAIT_MS),
    )


def _count(raw: Mapping[str, Any], key: str, default: int) -> int:
    """A positive whole number; absent, null or 0 means Dapr's default."""
    value = raw.get(key)
    if value is None:
        return default
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole:
        raise _Invalid(f"bulkSubscribe.{key} must be a whole number")
    if value < 0:
        raise _Invalid(f"bulkSubscribe.{key} must not be negative")
    return int(value) or default


def _text(raw: Mapping[str, Any], key: str, where: str = "") -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Invalid(f"{where + '.' if where else ''}{key} must be a string")
    return value
