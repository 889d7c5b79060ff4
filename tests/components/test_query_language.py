"""The state query parser: what it accepts, and a QueryError naming what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from components.errors import QueryError
from components.state.query import Comparison, In, Logical, matches, parse_query


def test_parses_nested_filters_sort_and_page() -> None:
    query = parse_query(
        {
            "filter": {"AND": [{"EQ": {"a.b": "x"}}, {"OR": [{"IN": {"n": [1, 2]}}, {"GT": {"n": 5}}]}]},
            "sort": [{"key": "n", "order": "DESC"}, {"key": "a.b"}],
            "page": {"limit": 3, "token": "6"},
        }
    )
    assert query.filter == Logical(
        "AND",
        (
            Comparison("EQ", ("a", "b"), "x"),
            Logical("OR", (In(("n",), (1, 2)), Comparison("GT", ("n",), 5))),
        ),
    )
    assert [(s.path, s.descending) for s in query.sort] == [(("n",), True), (("a", "b"), False)]
    assert (query.limit, query.offset) == (3, 6)


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"filter": {"LIKE": {"a": "x"}}},
        {"filter": {"EQ": {"a": "x"}, "NEQ": {"b": 1}}},
        {"filter": {"EQ": {"a": {"nested": 1}}}},
        {"filter": {"IN": {"a": []}}},
        {"filter": {"AND": []}},
        {"filter": {"EQ": {"a..b": 1}}},
        {"sort": [{"key": "a", "order": "UP"}]},
        {"sort": {"key": "a"}},
        {"page": {"limit": -1}},
        {"page": {"token": "abc"}},
        {"select": ["a"]},
    ],
)
def test_refuses_with_query_error(document: Any) -> None:
    with pytest.raises(QueryError):
        parse_query(document)


@pytest.mark.parametrize(
    ("query_filter", "document", "expected"),
    [
        ({"EQ": {"n": 1}}, {"n": 1}, True),
        ({"EQ": {"n": 1}}, {"n": True}, False),  # booleans are not numbers
        ({"EQ": {"n": "1"}}, {"n": 1}, False),  # nor strings
        ({"NEQ": {"n": 1}}, {}, True),  # an absent path differs from any value
        ({"GT": {"n": 1}}, {"n": "2"}, False),
        ({"LTE": {"s": "b"}}, {"s": "a"}, True),
        ({"IN": {"a.b": ["x", "y"]}}, {"a": {"b": "y"}}, True),
    ],
)
def test_matching(query_filter: dict[str, Any], document: Any, expected: bool) -> None:
    assert matches(parse_query({"filter": query_filter}).filter, document) is expected
