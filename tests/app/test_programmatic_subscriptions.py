"""Reading the app's ``GET /dapr/subscribe`` answer the lenient way Dapr reads it (§4.4)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs

from services.pubsub.programmatic import parse_programmatic
from services.pubsub.subscriptions import (
    DEFAULT_BULK_MAX_AWAIT_MS,
    DEFAULT_BULK_MAX_MESSAGES,
    BulkSubscribe,
    Rule,
    Subscription,
    SubscriptionType,
)


def parse(items: Any) -> list[Subscription]:
    return parse_programmatic(orjson.dumps(items))


def only(items: Any) -> Subscription:
    [subscription] = parse(items)
    return subscription


ALWAYS = ""


@pytest.mark.parametrize(
    ("element", "rules"),
    [
        ({"route": "/orders"}, [(ALWAYS, "/orders")]),
        ({"route": "orders"}, [(ALWAYS, "/orders")]),
        ({"routes": {"default": "/products"}}, [(ALWAYS, "/products")]),
        ({"route": "/v1", "routes": {"default": "/v2"}}, [(ALWAYS, "/v2")]),
        ({"route": "/v1", "routes": {"default": ""}}, [(ALWAYS, "/v1")]),
        (
            {
                "routes": {
                    "rules": [{"match": 'event.type == "widget"', "path": "widgets"}],
                    "default": "/products",
                }
            },
            [('event.type == "widget"', "/widgets"), (ALWAYS, "/products")],
        ),
        (
            {
                "route": "/fallback",
                "routes": {
                    "rules": [{"match": "event.data.n > 1", "path": "/a"}, {"match": "  ", "path": "/b"}]
                },
            },
            [("event.data.n > 1", "/a"), (ALWAYS, "/b"), (ALWAYS, "/fallback")],
        ),
        (
            {"routes": {"rules": [{"match": " event.id == 'x' ", "path": "/only"}]}},
            [("event.id == 'x'", "/only")],
        ),
        (
            {"route": "/pubsub--orders--default", "routes": None, "metadata": None},
            [(ALWAYS, "/pubsub--orders--default")],
        ),
    ],
    ids=[
        "v1-route",
        "no-slash",
        "default",
        "default-wins",
        "empty-default",
        "rules-default",
        "route-as-last",
        "no-default",
        "js-sdk",
    ],
)
def test_rules_in_order_then_the_default(element: dict[str, Any], rules: list[tuple[str, str]]) -> None:
    subscription = only([{"pubsubname": "pubsub", "topic": "orders", **element}])
    assert [(rule.match, rule.path) for rule in subscription.rules] == rules
    assert subscription.rules[-1] == Rule(match=rules[-1][0], path=rules[-1][1])


def test_a_full_element() -> None:
    subscription = only(
        [
            {
                "pubsubname": "pubsub",
                "topic": "orders",
                "route": "/orders",
                "metadata": {"rawPayload": "true"},
                "deadLetterTopic": "poison",
                "bulkSubscribe": {"enabled": True, "maxMessagesCount": 50, "maxAwaitDurationMs": 40},
            }
        ]
    )
    assert subscription == Subscription(
        pubsub="pubsub",
        topic="orders",
        rules=(Rule("", "/orders"),),
        type=SubscriptionType.PROGRAMMATIC,
        metadata={"rawPayload": "true"},
        dead_letter_topic="poison",
        bulk=BulkSubscribe(enabled=True, max_messages_count=50, max_await_duration_ms=40),
    )


def test_metadata_values_are_stringified_like_the_js_sdk_sends_them() -> None:
    metadata = {
        "s": "x",
        "t": True,
        "f": False,
        "i": 3,
        "x": 1.5,
        "n": None,
        "o": {"a": [1, "b"]},
        "l": [1, 2],
    }
    subscription = only([{"pubsubname": "p", "topic": "t", "route": "/r", "metadata": metadata}])
    assert subscription.metadata == {
        "s": "x",
        "t": "true",
        "f": "false",
        "i": "3",
        "x": "1.5",
        "n": "",
        "o": '{"a":[1,"b"]}',
        "l": "[1,2]",
    }


@pytest.mark.parametrize(
    ("bulk", "expected"),
    [
        (None, BulkSubscribe()),
        ({}, BulkSubscribe()),
        ({"enabled": True}, BulkSubscribe(True, DEFAULT_BULK_MAX_MESSAGES, DEFAULT_BULK_MAX_AWAIT_MS)),
        ({"enabled": True, "maxMessagesCount": 0, "maxAwaitDurationMs": 0}, BulkSubscribe(True)),
        ({"enabled": False, "maxMessagesCount": 10.0, "maxAwaitDurationMs": 5}, BulkSubscribe(False, 10, 5)),
    ],
)
def test_bulk_subscribe_with_dapr_defaults(bulk: Any, expected: BulkSubscribe) -> None:
    element = {"pubsubname": "p", "topic": "t", "route": "/r", "bulkSubscribe": bulk}
    assert only([element]).bulk == expected


def test_defaults_of_a_minimal_element() -> None:
    subscription = only([{"pubsubname": "p", "topic": "t", "route": "r"}])
    assert (subscription.metadata, subscription.dead_letter_topic, subscription.bulk, subscription.name) == (
        {},
        "",
        BulkSubscribe(),
        "",
    )


@pytest.mark.parametrize(
    ("element", "reason"),
    [
        ({"topic": "t", "route": "/r"}, "pubsubname is missing"),
        ({"pubsubname": "", "topic": "t", "route": "/r"}, "pubsubname is missing"),
        ({"pubsubname": "p", "route": "/r"}, "topic is missing"),
        ({"pubsubname": "p", "topic": 7, "route": "/r"}, "topic must be a string"),
        ({"pubsubname": "p", "topic": "t", "route": ["/r"]}, "route must be a string"),
        ({"pubsubname": "p", "topic": "t", "routes": "/r"}, "routes must be an object"),
        ({"pubsubname": "p", "topic": "t", "routes": {"rules": {}}}, "routes.rules must be an array"),
        ({"pubsubname": "p", "topic": "t", "routes": {"rules": ["/a"]}}, "routes.rules[0] must be an object"),
        (
            {
                "pubsubname": "p",
                "topic": "t",
                "routes": {"rules": [{"match": "event.type ==", "path": "/a"}]},
            },
            "invalid CEL",
        ),
        (
            {"pubsubname": "p", "topic": "t", "routes": {"rules": [{"match": 1, "path": "/a"}]}},
            "match must be a string",
        ),
        ({"pubsubname": "p", "topic": "t", "route": "/r", "metadata": ["a"]}, "metadata must be an object"),
        (
            {"pubsubname": "p", "topic": "t", "route": "/r", "bulkSubscribe": {"enabled": "yes"}},
            "enabled must be true or false",
        ),
        (
            {"pubsubname": "p", "topic": "t", "route": "/r", "bulkSubscribe": {"maxMessagesCount": 1.5}},
            "whole number",
        ),
        (
            {"pubsubname": "p", "topic": "t", "route": "/r", "bulkSubscribe": {"maxAwaitDurationMs": -1}},
            "negative",
        ),
        ("not an object", "must be a JSON object"),
    ],
)
def test_an_unusable_element_is_skipped_and_the_others_kept(element: Any, reason: str) -> None:
    good = {"pubsubname": "p", "topic": "good", "route": "/good"}
    with capture_logs() as logs:
        subscriptions = parse([element, good])
    assert [s.topic for s in subscriptions] == ["good"]
    [entry] = [entry for entry in logs if entry["log_level"] == "error"]
    assert entry["index"] == 0
    assert reason in entry["reason"]


def test_bad_cel_names_the_rule_and_the_position() -> None:
    element = {
        "pubsubname": "p",
        "topic": "t",
        "routes": {"rules": [{"match": "true", "path": "/a"}, {"match": "event.type ==", "path": "/b"}]},
    }
    with capture_logs() as logs:
        assert parse([element]) == []
    [entry] = logs
    assert (
        entry["reason"]
        == "routes.rules[1].match: invalid CEL expression 'event.type ==': syntax error at column 12"
    )


@pytest.mark.parametrize(
    "element", [{}, {"route": ""}, {"routes": {"rules": [], "default": ""}}, {"routes": {}}]
)
def test_a_subscription_without_any_route_is_discarded(element: dict[str, Any]) -> None:
    with capture_logs() as logs:
        assert parse([{"pubsubname": "p", "topic": "t", **element}]) == []
    assert [(entry["log_level"], entry["topic"]) for entry in logs] == [("warning", "t")]


def test_duplicates_first_wins_with_a_warning() -> None:
    with capture_logs() as logs:
        subscriptions = parse(
            [
                {"pubsubname": "p", "topic": "t", "route": "/first"},
                {"pubsubname": "p", "topic": "other", "route": "/other"},
                {"pubsubname": "p", "topic": "t", "route": "/second"},
                {"pubsubname": "q", "topic": "t", "route": "/third"},
            ]
        )
    assert [(s.pubsub, s.topic, s.rules[0].path) for s in subscriptions] == [
        ("p", "t", "/first"),
        ("p", "other", "/other"),
        ("q", "t", "/third"),
    ]
    assert [(entry["log_level"], entry["pubsub"], entry["topic"]) for entry in logs] == [
        ("warning", "p", "t")
    ]


@pytest.mark.parametrize(
    ("body", "logged"),
    [
        (b"", False),
        (b"  \n", False),
        (b"null", False),
        (b"[]", False),
        (b"{}", True),
        (b'{"pubsubname":"p","topic":"t","route":"/r"}', True),
        (b'"[]"', True),
        (b"42", True),
        (b"not json", True),
        (b"[{", True),
        (b"\xff\xfe", True),
    ],
)
def test_junk_bodies_mean_no_subscriptions(body: bytes, logged: bool) -> None:
    with capture_logs() as logs:
        assert parse_programmatic(body) == []
    assert [entry["log_level"] for entry in logs] == (["error"] if logged else [])
