"""Routing rules: CEL over the CloudEvent, first match wins, empty match always holds (§4.4)."""

from __future__ import annotations

import sys
import time

import pytest

from services.pubsub.routing import RouteTable, RuleError
from services.pubsub.subscriptions import Rule

WIDGET = {
    "id": "1",
    "type": "widget",
    "source": "checkout",
    "specversion": "1.0",
    "data": {"x": 5, "name": "w", "tags": ["a", "b"], "nested": {"ok": True}},
}


def table(*rules: tuple[str, str]) -> RouteTable:
    return RouteTable.compile([Rule(match, path) for match, path in rules])


@pytest.mark.parametrize(
    ("rules", "path"),
    [
        ([("", "/always")], "/always"),
        ([('event.type == "widget"', "/widgets"), ("", "/default")], "/widgets"),
        ([('event.type == "gadget"', "/gadgets"), ("", "/default")], "/default"),
        ([("event.data.x > 3", "/big"), ("event.data.x > 0", "/small")], "/big"),
        ([("event.data.x > 10", "/big"), ("event.data.x > 0", "/small")], "/small"),
        ([('event.data.nested.ok && "a" in event.data.tags', "/deep")], "/deep"),
        ([('event.data.name.startsWith("w")', "/w")], "/w"),
        ([("has(event.data.missing)", "/has"), ("", "/default")], "/default"),
        ([("event.source == 'checkout' && event.data.x == 5", "/both")], "/both"),
        ([("", "/first"), ("event.data.x > 0", "/second")], "/first"),
    ],
)
def test_first_matching_rule_gives_the_path(rules: list[tuple[str, str]], path: str) -> None:
    assert table(*rules).path_for(WIDGET) == path


def test_no_matching_rule_gives_none() -> None:
    assert table(('event.type == "gadget"', "/gadgets")).path_for(WIDGET) is None
    assert table().path_for(WIDGET) is None


def test_empty_matches_never_load_cel() -> None:
    routes = table(("", "/orders"), ("   ", "/unused"))
    assert not routes.uses_cel
    # An event CEL could not even represent is fine when no expression is evaluated.
    assert routes.path_for({"data": object()}) == "/orders"


@pytest.mark.parametrize("expression", ["event.data.x", '"yes"', "event.data.x + 1", "event.data.tags"])
def test_a_non_bool_result_is_an_error(expression: str) -> None:
    with pytest.raises(RuleError, match="not a boolean"):
        table((expression, "/p")).path_for(WIDGET)


@pytest.mark.parametrize(
    "expression",
    ["event.data.nope == 1", "event.data.x / 0 == 1", "event.type > 3", "unknownfn(event.type)"],
)
def test_an_evaluation_error_is_an_error(expression: str) -> None:
    with pytest.raises(RuleError, match="failed"):
        table((expression, "/p")).path_for(WIDGET)


def test_a_later_rule_is_not_evaluated_after_a_match() -> None:
    routes = table(('event.type == "widget"', "/widgets"), ("event.data.nope == 1", "/never"))
    assert routes.path_for(WIDGET) == "/widgets"


@pytest.mark.parametrize("expression", ["event.type ==", "event.type == 'a", "&& x", "event..type"])
def test_a_bad_expression_fails_compile(expression: str) -> None:
    with pytest.raises(RuleError, match="invalid CEL expression"):
        table((expression, "/p"))


def test_cost_per_evaluation_is_measured() -> None:
    """Not a benchmark gate: it reports the figure the module documents (run with -s to see it)
    and fails only if evaluation became absurdly slow (50 ms)."""
    routes = table(
        ('event.type == "gadget"', "/gadgets"), ('event.type == "widget" && event.data.x > 3', "/w")
    )
    empty = table(("", "/always"))
    rounds = 300
    started = time.perf_counter()
    for _ in range(rounds):
        assert routes.path_for(WIDGET) == "/w"
    with_cel = (time.perf_counter() - started) / rounds
    started = time.perf_counter()
    for _ in range(rounds):
        empty.path_for(WIDGET)
    without = (time.perf_counter() - started) / rounds
    print(
        f"\nrouting: 2 CEL rules {with_cel * 1e3:.3f} ms per message; empty match {without * 1e6:.2f} us",
        file=sys.stderr,
    )
    assert with_cel < 0.05
    assert without < 0.0005
