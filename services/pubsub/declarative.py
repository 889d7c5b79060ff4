"""Declarative subscriptions: ``kind: Subscription`` documents from ``--resources-path``.

``dapr.io/v2alpha1`` carries ``spec.routes`` (rules and a default); ``dapr.io/v1alpha1`` carries a
single ``spec.route``, which becomes the default. Top-level ``scopes`` names the apps the
subscription is for (empty: every app).

Unlike the app's ``/dapr/subscribe`` answer, a resource file is the operator's and is read at
start-up: any document l8 cannot use fails start-up with one line naming the file, the subscription
and the field, where Dapr would log and carry on (or, for an unknown apiVersion, guess v1alpha1).
A document for another app is skipped before its spec is checked, as components are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from components.resources import ResourceError
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

SUBSCRIPTION_KIND = "Subscription"
V1ALPHA1 = "dapr.io/v1alpha1"
V2ALPHA1 = "dapr.io/v2alpha1"


class SubscriptionResourceError(ResourceError):
    """A Subscription resource cannot be used: ``<file>: subscription '<name>': field '<f>': why``."""

    def __init__(self, source: str, message: str, subscription: str | None = None, field: str | None = None):
        super().__init__(source, message, subscription, field)
        parts = [source]
        if subscription:
            parts.append(f"subscription {subscription!r}")
        if field:
            parts.append(f"field {field!r}")
        self.args = (": ".join([*parts, message]),)
        self.subscription = subscription


def declarative_subscriptions(
    others: list[tuple[str, dict[str, Any], str]], app_id: str
) -> list[Subscription]:
    """The Subscription resources among ``Resources.others`` that apply to ``app_id``, in file order.

    Raises :class:`SubscriptionResourceError` (a :class:`~components.resources.ResourceError`) for the first
    document that cannot be used. A later resource for a (pubsub, topic) already seen is ignored
    with a warning, as Dapr keeps the first.
    """
    subscriptions: dict[tuple[str, str], Subscription] = {}
    for kind, document, source in others:
        if kind != SUBSCRIPTION_KIND:
            continue
        subscription = _subscription(_Document(document, source), app_id)
        if subscription is None:
            continue
        if subscription.key in subscriptions:
            log.warning(
                "duplicate subscription ignored; the first one is kept",
                subscription=subscription.name,
                kept=subscriptions[subscription.key].name,
                pubsub=subscription.pubsub,
                topic=subscription.topic,
                file=source,
            )
            continue
        subscriptions[subscription.key] = subscription
    return list(subscriptions.values())


class _Document:
    """One Subscription document and what its errors are reported against."""

    def __init__(self, document: dict[str, Any], source: str) -> None:
        self.document = document
        self.source = source
        self.name: str | None = None

    def error(self, message: str, field: str | None = None) -> SubscriptionResourceError:
        return SubscriptionResourceError(self.source, message, self.name, field)

    def text(self, raw: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str:
        value = raw.get(key)
        field = _field(where, key)
        if value is None or value == "":
            if required:
                raise self.error("is required", field)
            return ""
        if not isinstance(value, str):
            raise self.error(f"must be a string, got {type(value).__name__}", field)
        return value

    def mapping(self, raw: Mapping[str, Any], key: str, where: str) -> dict[str, Any] | None:
        value = raw.get(key)
        if value is not None and not isinstance(value, dict):
            raise self.error(f"must be a mapping, got {type(value).__name__}", _field(where, key))
        return value


def _field(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _subscription(doc: _Document, app_id: str) -> Subscription | None:
    metadata = doc.mapping(doc.document, "metadata", "") or {}
    doc.name = doc.text(metadata, "name", "metadata", required=True)
    api_version = doc.document.get("apiVersion")
    if api_version not in (V1ALPHA1, V2ALPHA1):
        raise doc.error(f"must be {V2ALPHA1} or {V1ALPHA1}, got {api_version!r}", "apiVersion")
    scopes = doc.document.get("scopes") or []
    if not isinstance(scopes, list) or not all(isinstance(scope, str) for scope in scopes):
        raise doc.error("must be a list of app ids", "scopes")
    if scopes and app_id not in scopes:
        log.info(
            "subscription not in scope for this app", subscription=doc.name, app_id=app_id, file=doc.source
        )
        return None
    spec = doc.mapping(doc.document, "spec", "")
    if spec is None:
        raise doc.error("is required", "spec")
    return Subscription(
        pubsub=doc.text(spec, "pubsubname", "spec", required=True),
        topic=doc.text(spec, "topic", "spec", required=True),
        rules=_rules(doc, spec, api_version),
        type=SubscriptionType.DECLARATIVE,
        metadata=_metadata(doc, spec),
        dead_letter_topic=doc.text(spec, "deadLetterTopic", "spec"),
        bulk=_bulk(doc, spec),
        name=doc.name,
    )


def _rules(doc: _Document, spec: Mapping[str, Any], api_version: str) -> tuple[Rule, ...]:
    if api_version == V1ALPHA1:
        if spec.get("routes") is not None:
            raise doc.error(f"needs apiVersion {V2ALPHA1}; {V1ALPHA1} has spec.route", "spec.routes")
        return (Rule(match="", path=route_path(doc.text(spec, "route", "spec", required=True))),)
    if spec.get("route") is not None:
        raise doc.error(f"is {V1ALPHA1}; {V2ALPHA1} has spec.routes.default", "spec.route")
    routes = doc.mapping(spec, "routes", "spec")
    if routes is None:
        raise doc.error("is required (rules and/or a default)", "spec.routes")
    raw_rules = routes.get("rules")
    if raw_rules is not None and not isinstance(raw_rules, list):
        raise doc.error("must be a list of {match, path}", "spec.routes.rules")
    rules: list[Rule] = []
    for position, raw in enumerate(raw_rules or []):
        where = f"spec.routes.rules[{position}]"
        if not isinstance(raw, dict):
            raise doc.error("must be a mapping with match and path", where)
        match = doc.text(raw, "match", where).strip()
        error = match_error(match)
        if error is not None:
            raise doc.error(error, f"{where}.match")
        rules.append(Rule(match=match, path=route_path(doc.text(raw, "path", where, required=True))))
    default = doc.text(routes, "default", "spec.routes")
    if default:
        rules.append(Rule(match="", path=route_path(default)))
    if not rules:
        raise doc.error("needs at least one rule or a default", "spec.routes")
    return tuple(rules)


def _metadata(doc: _Document, spec: Mapping[str, Any]) -> dict[str, str]:
    raw = doc.mapping(spec, "metadata", "spec") or {}
    values: dict[str, str] = {}
    for name, value in raw.items():
        text = metadata_text(value)
        if text is None:
            raise doc.error(f"must be a string, got {type(value).__name__}", f"spec.metadata.{name}")
        values[str(name)] = text
    return values


def _bulk(doc: _Document, spec: Mapping[str, Any]) -> BulkSubscribe:
    raw = doc.mapping(spec, "bulkSubscribe", "spec")
    if raw is None:
        return BulkSubscribe()
    enabled = raw.get("enabled", False)
    if not isinstance(enabled, bool):
        raise doc.error("must be true or false", "spec.bulkSubscribe.enabled")
    return BulkSubscribe(
        enabled=enabled,
        max_messages_count=_count(doc, raw, "maxMessagesCount", DEFAULT_BULK_MAX_MESSAGES),
        max_await_duration_ms=_count(doc, raw, "maxAwaitDurationMs", DEFAULT_BULK_MAX_AWAIT_MS),
    )


def _count(doc: _Document, raw: Mapping[str, Any], key: str, default: int) -> int:
    """A whole number of at least 0; absent or 0 means Dapr's default."""
    value = raw.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise doc.error("must be a whole number, 0 or more", f"spec.bulkSubscribe.{key}")
    return value or default
