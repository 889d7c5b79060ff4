"""Path matching for metric labels, as ``spec.metric.http.pathMatching`` asks (Go's ServeMux
patterns, as Dapr uses them): ``{name}`` takes one segment, ``{name...}`` the rest of the path, a
pattern ending in ``/`` every path under it, ``{$}`` the end of the path. A matched path is
labelled with its pattern, so label values stay as few as the patterns.

What no pattern matches gets the fallback the caller gives: Dapr's low-cardinality mode drops the
path (""); otherwise l8 labels the route's template, never the raw path (a state key or an invoked
method is not a label of its own).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_WILDCARD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)?(\.\.\.)?\}|\{\$\}")
_CACHED = 4096
"""Paths whose label is remembered; the cache is emptied past it (paths come from requests)."""


def _compile(pattern: str) -> re.Pattern[str]:
    parts, end = ["^"], 0
    for found in _WILDCARD.finditer(pattern):
        parts.append(re.escape(pattern[end : found.start()]))
        if found.group(0) == "{$}":
            parts.append("$")
        elif found.group(2):
            parts.append("(?s:.*)")
        else:
            parts.append("[^/]+")
        end = found.end()
    tail = pattern[end:]
    parts.append(re.escape(tail))
    if not pattern.endswith("{$}"):
        parts.append("" if pattern.endswith("/") else "$")
    return re.compile("".join(parts))


def _specificity(pattern: str) -> tuple[int, int, int]:
    """Most specific first: exact paths, then more literal segments, then longer patterns."""
    wild = 1 if ("{" in pattern and "{$}" not in pattern) or pattern.endswith("/") else 0
    literal = sum(1 for segment in pattern.split("/") if segment and "{" not in segment)
    return (wild, -literal, -len(pattern))


class PathMatcher:
    """The ``pathMatching`` patterns; :meth:`label` is the pattern matching a path, or None."""

    def __init__(self, patterns: Iterable[str]) -> None:
        unique = sorted(set(patterns), key=_specificity)
        self._compiled = [(pattern, _compile(pattern)) for pattern in unique]
        self._labels: dict[str, str | None] = {}

    def __bool__(self) -> bool:
        return bool(self._compiled)

    def label(self, path: str) -> str | None:
        found = self._labels.get(path, "")
        if found != "":
            return found
        label = next((pattern for pattern, regex in self._compiled if regex.match(path)), None)
        if len(self._labels) >= _CACHED:
            self._labels.clear()
        self._labels[path] = label
        return label
