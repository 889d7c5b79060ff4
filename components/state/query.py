"""Dapr's state query language: parsing, and an evaluator for stores that filter in Python.

A query is ``{"filter": F, "sort": [{"key": "a.b", "order": "ASC"|"DESC"}], "page": {"limit": N,
"token": "T"}}`` where F is ``{"EQ"|"NEQ"|"GT"|"GTE"|"LT"|"LTE": {"a.b": value}}``,
``{"IN": {"a.b": [values]}}`` or ``{"AND"|"OR": [F, ...]}``. Keys are dotted paths into the stored
JSON value. Comparisons only hold between values of one kind (numbers with numbers, strings with
strings); a path that is absent matches nothing except NEQ. Results are ordered by the sort keys,
then by storage key, so pages are stable; the page token is the offset of the next page.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from components.errors import QueryError

COMPARISONS = ("EQ", "NEQ", "GT", "GTE", "LT", "LTE")
LOGICAL = ("AND", "OR")
MISSING: Any = object()
# Limits and offsets stay far below SQLite's 64-bit integers, even added together.
MAX_PAGE = 2**31 - 1


@dataclass(slots=True, frozen=True)
class Comparison:
    op: str
    path: tuple[str, ...]
    value: Any


@dataclass(slots=True, frozen=True)
class In:
    path: tuple[str, ...]
    values: tuple[Any, ...]


@dataclass(slots=True, frozen=True)
class Logical:
    op: str
    children: tuple[Filter, ...]


Filter = Comparison | In | Logical


@dataclass(slots=True, frozen=True)
class Sort:
    path: tuple[str, ...]
    descending: bool = False


@dataclass(slots=True, frozen=True)
class Query:
    filter: Filter | None
    sort: tuple[Sort, ...] = ()
    limit: int = 0
    """0 means no limit."""
    offset: int = 0


def parse_query(document: Any) -> Query:
    """Decode a query body; raises QueryError with a message naming what is wrong."""
    if not isinstance(document, dict):
        raise QueryError("query must be a JSON object")
    unknown = set(document) - {"filter", "sort", "page"}
    if unknown:
        raise QueryError(f"unknown query field(s): {', '.join(sorted(unknown))}")
    raw_filter = document.get("filter")
    query_filter = None if raw_filter in (None, {}) else _parse_filter(raw_filter)
    return Query(query_filter, _parse_sort(document.get("sort")), *_parse_page(document.get("page")))


def _path(key: Any) -> tuple[str, ...]:
    if not isinstance(key, str) or not key or any(part == "" for part in key.split(".")):
        raise QueryError(f"invalid key path {key!r}")
    return tuple(key.split("."))


def _parse_filter(raw: Any) -> Filter:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise QueryError("a filter must be an object with exactly one operator")
    op, operand = next(iter(raw.items()))
    if op in LOGICAL:
        if not isinstance(operand, list) or not operand:
            raise QueryError(f"{op} expects a non-empty array of filters")
        return Logical(op, tuple(_parse_filter(child) for child in operand))
    if op in COMPARISONS or op == "IN":
        if not isinstance(operand, dict) or len(operand) != 1:
            raise QueryError(f"{op} expects an object with exactly one key")
        key, value = next(iter(operand.items()))
        if op == "IN":
            if not isinstance(value, list) or not value:
                raise QueryError("IN expects a non-empty array of values")
            return In(_path(key), tuple(value))
        if isinstance(value, dict | list):
            raise QueryError(f"{op} compares with a string, number, boolean or null, not {value!r}")
        return Comparison(op, _path(key), value)
    raise QueryError(f"unsupported filter operator {op!r}")


def _parse_sort(raw: Any) -> tuple[Sort, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise QueryError("sort must be an array")
    sorts = []
    for entry in raw:
        if not isinstance(entry, dict) or "key" not in entry:
            raise QueryError("each sort entry needs a key")
        order = entry.get("order", "ASC")
        if order not in ("ASC", "DESC"):
            raise QueryError(f"sort order must be ASC or DESC, not {order!r}")
        sorts.append(Sort(_path(entry["key"]), order == "DESC"))
    return tuple(sorts)


def _parse_page(raw: Any) -> tuple[int, int]:
    if raw is None:
        return 0, 0
    if not isinstance(raw, dict):
        raise QueryError("page must be an object")
    limit = raw.get("limit", 0)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_PAGE:
        raise QueryError(f"page limit must be an integer from 0 to {MAX_PAGE}, not {limit!r}")
    token = raw.get("token") or "0"
    if not isinstance(token, str) or not (token.isascii() and token.isdigit()) or int(token) > MAX_PAGE:
        raise QueryError(f"invalid page token {token!r}")
    return limit, int(token)


# -- evaluation over decoded JSON values -------------------------------------------------------------


def lookup(document: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(document, dict) or part not in document:
            return MISSING
        document = document[part]
    return document


def _kind(value: Any) -> int:
    """Rank of a JSON value's kind; values of different kinds never compare equal or ordered."""
    if value is MISSING:
        return 0
    if value is None:
        return 1
    if isinstance(value, bool):
        return 2
    if isinstance(value, int | float):
        return 3
    if isinstance(value, str):
        return 4
    return 5


def _equal(left: Any, right: Any) -> bool:
    return _kind(left) == _kind(right) and left == right


def matches(query_filter: Filter | None, document: Any) -> bool:
    if query_filter is None:
        return True
    if isinstance(query_filter, Logical):
        results = (matches(child, document) for child in query_filter.children)
        return all(results) if query_filter.op == "AND" else any(results)
    value = lookup(document, query_filter.path)
    if isinstance(query_filter, In):
        return any(_equal(value, candidate) for candidate in query_filter.values)
    op, expected = query_filter.op, query_filter.value
    if op == "EQ":
        return _equal(value, expected)
    if op == "NEQ":
        return not _equal(value, expected)
    if _kind(value) != _kind(expected) or _kind(value) not in (3, 4):
        return False
    if op == "GT":
        return bool(value > expected)
    if op == "GTE":
        return bool(value >= expected)
    if op == "LT":
        return bool(value < expected)
    return bool(value <= expected)


class _Descending:
    """Wraps a sort key so that a plain ascending sort orders it the other way."""

    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key

    def __lt__(self, other: _Descending) -> bool:
        return bool(other.key < self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.key == other.key

    __hash__ = None  # type: ignore[assignment]


def _sortable(value: Any) -> tuple[int, Any]:
    kind = _kind(value)
    if kind == 3 and isinstance(value, float) and math.isnan(value):
        return kind, 0
    if kind in (2, 3, 4):
        return kind, value
    return kind, "" if kind < 2 else repr(value)


def run(
    query: Query, rows: Iterable[tuple[str, Any, Any]], decode: Callable[[Any], Any]
) -> tuple[list[Any], str | None]:
    """Filter, sort and page ``(key, raw, payload)`` rows; ``decode(raw)`` gives the JSON value.

    Returns the payloads of the page and the token of the next page (None when this is the last).
    """
    selected: list[tuple[str, Any, Any]] = []
    for key, raw, payload in rows:
        try:
            document = decode(raw)
        except ValueError:
            continue  # values that are not JSON cannot match a query over JSON paths
        if matches(query.filter, document):
            selected.append((key, document, payload))

    def order(row: tuple[str, Any, Any]) -> tuple[Any, ...]:
        parts: list[Any] = []
        for sort in query.sort:
            key = _sortable(lookup(row[1], sort.path))
            parts.append(_Descending(key) if sort.descending else key)
        parts.append(row[0])
        return tuple(parts)

    selected.sort(key=order)
    return page(selected, query, lambda row: row[2])


def page(rows: Sequence[Any], query: Query, pick: Callable[[Any], Any]) -> tuple[list[Any], str | None]:
    """Cut one page out of already ordered rows."""
    start = query.offset
    end = len(rows) if query.limit == 0 else start + query.limit
    chosen = [pick(row) for row in rows[start:end]]
    return chosen, (str(end) if query.limit and end < len(rows) else None)
