"""Topic scoping read from component metadata, with Dapr's semantics (IsOperationAllowed)."""

from __future__ import annotations

import pytest

from components.errors import MetadataError
from services.pubsub.scopes import TopicScopes


def scopes(**metadata: str) -> TopicScopes:
    return TopicScopes.from_metadata(metadata)


def test_no_scoping_allows_everything() -> None:
    everything = scopes()
    assert everything.unrestricted
    assert everything.can_publish("app1", "orders")
    assert everything.can_subscribe("app1", "")


def test_allowed_topics_restrict_every_app_both_ways() -> None:
    allowed = scopes(allowedTopics="orders, payments")
    assert allowed.can_publish("any", "orders")
    assert allowed.can_subscribe("any", "payments")
    assert not allowed.can_publish("any", "shipping")
    assert not allowed.can_subscribe("any", "shipping")


def test_publishing_scopes_restrict_only_listed_apps() -> None:
    scoped = scopes(publishingScopes="app1=orders,payments;app2=shipping")
    assert scoped.can_publish("app1", "orders")
    assert not scoped.can_publish("app1", "shipping")
    assert scoped.can_publish("app2", "shipping")
    assert not scoped.can_publish("app2", "orders")
    assert scoped.can_publish("app3", "anything")  # not listed: not scoped
    assert scoped.can_subscribe("app1", "shipping")  # publishing scopes say nothing of subscribing


def test_subscription_scopes_restrict_only_subscribing() -> None:
    scoped = scopes(subscriptionScopes="app1=orders")
    assert scoped.can_subscribe("app1", "orders")
    assert not scoped.can_subscribe("app1", "payments")
    assert scoped.can_publish("app1", "payments")


def test_an_app_listed_with_no_topics_may_use_none() -> None:
    scoped = scopes(publishingScopes="app1=;app2=orders")
    assert not scoped.can_publish("app1", "orders")
    assert scoped.can_publish("app2", "orders")


def test_an_app_listed_twice_gets_the_union() -> None:
    scoped = scopes(publishingScopes="app1=orders;app1=payments")
    assert scoped.can_publish("app1", "orders")
    assert scoped.can_publish("app1", "payments")
    assert not scoped.can_publish("app1", "shipping")


def test_allowed_topics_win_over_scopes() -> None:
    scoped = scopes(allowedTopics="orders", publishingScopes="app1=orders,shipping")
    assert scoped.can_publish("app1", "orders")
    assert not scoped.can_publish("app1", "shipping")


def test_protected_topics_need_a_scope_naming_them() -> None:
    protected = scopes(protectedTopics="payments", publishingScopes="app1=payments;app2=orders")
    assert protected.can_publish("app1", "payments")
    assert not protected.can_publish("app2", "payments")  # scoped, but not to payments
    assert not protected.can_publish("app3", "payments")  # not scoped at all
    assert protected.can_publish("app3", "orders")  # unprotected topics stay open
    assert not protected.can_subscribe("app1", "payments")  # no subscription scope lists it


def test_names_are_case_insensitive_and_spaces_are_removed() -> None:
    scoped = scopes(PUBLISHINGSCOPES=" app1 = orders , payments ; app2=x", AllowedTopics="orders ,payments")
    assert scoped.can_publish("app1", "payments")
    assert not scoped.can_publish("app2", "orders")
    assert scoped.allowed_topics == frozenset({"orders", "payments"})


def test_trailing_and_doubled_separators_are_fine() -> None:
    scoped = scopes(publishingScopes="app1=orders;;app2=x;")
    assert scoped.can_publish("app1", "orders")
    assert not scoped.can_publish("app1", "x")


def test_other_metadata_is_ignored() -> None:
    assert scopes(redisHost="localhost:6379", consumerID="app1").unrestricted


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("app1", "must be <app id>=<topic>"),
        ("app1=orders;app2", "must be <app id>=<topic>"),
        ("=orders", "names no app id"),
        ("app1=orders=payments", "more than one '='"),
    ],
)
@pytest.mark.parametrize("name", ["publishingScopes", "subscriptionScopes"])
def test_malformed_scopes_fail_naming_the_field(name: str, value: str, problem: str) -> None:
    with pytest.raises(MetadataError) as raised:
        scopes(**{name: value})
    assert raised.value.field == name
    assert problem in raised.value.message
