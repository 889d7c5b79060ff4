"""Subscription resources from ``--resources-path`` (§4.7), read through the real resource loader."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from components.resources import ResourceError, load_resources
from services.pubsub.declarative import declarative_subscriptions
from services.pubsub.subscriptions import BulkSubscribe, Rule, Subscription, SubscriptionType

V2 = """
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: orders-sub
spec:
  pubsubname: pubsub
  topic: orders
  routes:
    rules:
    - match: 'event.type == "widget"'
      path: /widgets
    - match: event.data.n > 10
      path: big
    default: /orders
  deadLetterTopic: poison
  metadata:
    rawPayload: "false"
    maxRetries: 3
    strict: true
  bulkSubscribe: {enabled: true, maxMessagesCount: 50, maxAwaitDurationMs: 200}
scopes: [checkout]
"""

V1 = """
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata: {name: legacy}
spec:
  pubsubname: pubsub
  topic: legacy
  route: legacy-handler
"""

COMPONENT = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: pubsub}
spec: {type: pubsub.in-memory, version: v1}
"""


def load(folder: Path, app_id: str = "checkout", **files: str) -> list[Subscription]:
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text)
    return declarative_subscriptions(load_resources([folder], app_id=app_id).others, app_id)


def test_v2alpha1_with_rules_default_and_every_field(tmp_path: Path) -> None:
    [subscription] = load(tmp_path, a=V2 + "---" + COMPONENT)
    assert subscription == Subscription(
        pubsub="pubsub",
        topic="orders",
        rules=(
            Rule('event.type == "widget"', "/widgets"),
            Rule("event.data.n > 10", "/big"),
            Rule("", "/orders"),
        ),
        type=SubscriptionType.DECLARATIVE,
        metadata={"rawPayload": "false", "maxRetries": "3", "strict": "true"},
        dead_letter_topic="poison",
        bulk=BulkSubscribe(enabled=True, max_messages_count=50, max_await_duration_ms=200),
        name="orders-sub",
    )


def test_v1alpha1_route_becomes_the_default(tmp_path: Path) -> None:
    [subscription] = load(tmp_path, a=V1)
    assert subscription == Subscription(
        pubsub="pubsub",
        topic="legacy",
        rules=(Rule("", "/legacy-handler"),),
        type=SubscriptionType.DECLARATIVE,
        name="legacy",
    )


def test_v2alpha1_with_rules_only_or_default_only(tmp_path: Path) -> None:
    rules_only = V2.replace("    default: /orders\n", "")
    default_only = V1.replace("dapr.io/v1alpha1", "dapr.io/v2alpha1").replace(
        "  route: legacy-handler", "  routes: {default: /legacy}"
    )
    subscriptions = load(tmp_path, a=rules_only, b=default_only)
    assert [[(r.match, r.path) for r in s.rules] for s in subscriptions] == [
        [('event.type == "widget"', "/widgets"), ("event.data.n > 10", "/big")],
        [("", "/legacy")],
    ]


def test_scopes(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(V2 + "---" + V1 + "scopes: []\n")
    with capture_logs() as logs:
        others = load_resources([tmp_path], app_id="billing").others
        assert [s.name for s in declarative_subscriptions(others, "billing")] == ["legacy"]
    [skipped] = [entry for entry in logs if entry.get("subscription")]
    assert (skipped["log_level"], skipped["subscription"], skipped["app_id"]) == (
        "info",
        "orders-sub",
        "billing",
    )
    assert [s.name for s in declarative_subscriptions(others, "checkout")] == ["orders-sub", "legacy"]


def test_other_kinds_are_ignored_and_no_resources_means_no_subscriptions(tmp_path: Path) -> None:
    resiliency = "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: r}\nspec: {}\n"
    assert load(tmp_path, a=COMPONENT, b=resiliency) == []
    assert declarative_subscriptions([], "checkout") == []


def test_duplicates_first_in_file_order_wins(tmp_path: Path) -> None:
    second = V1.replace("name: legacy", "name: legacy-again").replace("route: legacy-handler", "route: other")
    with capture_logs() as logs:
        subscriptions = load(tmp_path, a=V1, b=second)
    assert [(s.name, s.rules[0].path) for s in subscriptions] == [("legacy", "/legacy-handler")]
    [warning] = [entry for entry in logs if entry["log_level"] == "warning"]
    assert (warning["subscription"], warning["kept"]) == ("legacy-again", "legacy")


def replace(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        (
            replace(V2, "dapr.io/v2alpha1", "dapr.io/v3"),
            "apiVersion",
            "must be dapr.io/v2alpha1 or dapr.io/v1alpha1, got 'dapr.io/v3'",
        ),
        (replace(V2, "  pubsubname: pubsub\n", ""), "spec.pubsubname", "is required"),
        (replace(V2, "topic: orders", "topic: ''"), "spec.topic", "is required"),
        (replace(V2, "topic: orders", "topic: [orders]"), "spec.topic", "must be a string, got list"),
        (
            replace(V2, "    - match: event.data.n > 10", "    - match: event.data.n >"),
            "spec.routes.rules[1].match",
            "invalid CEL expression 'event.data.n >': syntax error at column 14",
        ),
        (replace(V2, "      path: big\n", ""), "spec.routes.rules[1].path", "is required"),
        (
            replace(
                V2, "    - match: 'event.type == \"widget\"'\n      path: /widgets\n", "    - /widgets\n"
            ),
            "spec.routes.rules[0]",
            "must be a mapping with match and path",
        ),
        (
            replace(V2, "    rules:\n", "    rules: {}\n    x:\n"),
            "spec.routes.rules",
            "must be a list of {match, path}",
        ),
        (
            replace(replace(V2, "    default: /orders\n", ""), "    rules:\n", "    rules: []\n    x:\n"),
            "spec.routes",
            "needs at least one rule or a default",
        ),
        (
            replace(V2, "  routes:\n", "  route: /x\n  routes:\n"),
            "spec.route",
            "is dapr.io/v1alpha1; dapr.io/v2alpha1 has spec.routes.default",
        ),
        (
            V2[: V2.index("  routes:")] + "scopes: [checkout]\n",
            "spec.routes",
            "is required (rules and/or a default)",
        ),
        (
            replace(V2, "    maxRetries: 3\n", "    maxRetries: [3]\n"),
            "spec.metadata.maxRetries",
            "must be a string, got list",
        ),
        (
            replace(V2, "  metadata:\n    rawPayload", "  metadata: nope\n  x:\n    rawPayload"),
            "spec.metadata",
            "must be a mapping, got str",
        ),
        (
            replace(V2, "enabled: true", "enabled: 'yes'"),
            "spec.bulkSubscribe.enabled",
            "must be true or false",
        ),
        (
            replace(V2, "maxMessagesCount: 50", "maxMessagesCount: many"),
            "spec.bulkSubscribe.maxMessagesCount",
            "must be a whole number, 0 or more",
        ),
        (
            replace(V2, "maxAwaitDurationMs: 200", "maxAwaitDurationMs: -1"),
            "spec.bulkSubscribe.maxAwaitDurationMs",
            "must be a whole number, 0 or more",
        ),
        (
            replace(V2, "deadLetterTopic: poison", "deadLetterTopic: {a: b}"),
            "spec.deadLetterTopic",
            "must be a string, got dict",
        ),
        (replace(V2, "scopes: [checkout]", "scopes: checkout"), "scopes", "must be a list of app ids"),
        (V2[: V2.index("spec:")] + "scopes: [checkout]\n", "spec", "is required"),
        (replace(V1, "  route: legacy-handler\n", ""), "spec.route", "is required"),
        (
            replace(V1, "  route: legacy-handler\n", "  routes: {default: /x}\n"),
            "spec.routes",
            "needs apiVersion dapr.io/v2alpha1; dapr.io/v1alpha1 has spec.route",
        ),
    ],
)
def test_an_invalid_document_fails_with_one_line_naming_file_subscription_and_field(
    tmp_path: Path, text: str, field: str, message: str
) -> None:
    with pytest.raises(ResourceError) as caught:
        load(tmp_path, ok=V1.replace("legacy", "fine"), subs=text)
    name = "legacy" if text.startswith(V1[:40]) else "orders-sub"
    assert str(caught.value) == f"{tmp_path / 'subs.yaml'}: subscription {name!r}: field {field!r}: {message}"
    assert "\n" not in str(caught.value)
    assert (caught.value.source, caught.value.field) == (str(tmp_path / "subs.yaml"), field)


@pytest.mark.parametrize(
    "metadata",
    ["metadata: {}\n", "metadata: {name: 3}\n", "metadata: [name]\n", ""],
)
def test_a_document_without_a_name(tmp_path: Path, metadata: str) -> None:
    text = replace(V1, "metadata: {name: legacy}\n", metadata)
    with pytest.raises(ResourceError) as caught:
        load(tmp_path, subs=text)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'subs.yaml'}: field 'metadata")
    assert message.endswith(("is required", "must be a string, got int", "must be a mapping, got list"))


def test_a_document_for_another_app_is_not_checked(tmp_path: Path) -> None:
    broken = replace(V2, "  topic: orders\n", "")
    assert load(tmp_path, app_id="billing", subs=broken) == []
    with pytest.raises(ResourceError, match=r"field .spec\.topic.: is required"):
        load(tmp_path, app_id="checkout")
