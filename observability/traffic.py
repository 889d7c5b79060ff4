"""The dashboard's traffic charts: requests per second and p50/p99 latency per building block over
the last minutes.

Nothing is recorded per request for them: every ``interval`` seconds :class:`TrafficWindow` reads
the HTTP server latency histogram the Prometheus recorder already fills (its cumulative bucket
counts by ``path`` label), takes the difference from its previous reading, and keeps one point per
block in a ring of ``points``. A block is the route template's building block (``/v1.0/state/...``
is ``state``, an invocation's fallback route ``invoke``); the quantiles are interpolated within
the histogram's buckets, as Prometheus' ``histogram_quantile`` does.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

_API_VERSIONS = frozenset({"v1.0", "v1.0-alpha1", "v1.0-beta1", "v1", "v1alpha1"})
FALLBACK_TEMPLATE = "/{path:path}"
"""The fallback route's template: invocation by ``dapr-app-id``."""


def block_of(template: str) -> str:
    """The building block a route template (or a ``pathMatching`` pattern) belongs to."""
    if template == FALLBACK_TEMPLATE:
        return "invoke"
    parts = [part for part in template.split("/") if part]
    if not parts:
        return "other"
    if parts[0] in _API_VERSIONS and len(parts) > 1:
        return parts[1]
    return parts[0] if not parts[0].startswith("{") else "other"


def quantile(q: float, bounds: Sequence[float], cumulative: Sequence[float]) -> float | None:
    """The ``q`` quantile of one interval's observations, from its cumulative bucket counts
    (``cumulative[-1]`` the total, +Inf's); linear within the bucket it falls in, the last finite
    bound when it falls in +Inf. None with no observation."""
    total = cumulative[-1] if cumulative else 0.0
    if total <= 0:
        return None
    rank = q * total
    below, lower = 0.0, 0.0
    for bound, count in zip(bounds, cumulative, strict=False):
        if count >= rank:
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        below, lower = count, bound
    return bounds[-1] if bounds else None


@dataclass(frozen=True, slots=True)
class Point:
    rps: float
    p50: float | None
    p99: float | None


class TrafficWindow:
    """The last ``points`` samples, one every ``interval`` seconds, per block."""

    def __init__(
        self,
        read: Callable[[], dict[str, list[float]]],
        bounds: Sequence[float],
        *,
        interval: float = 2.0,
        points: int = 150,
        exclude: Collection[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._read = read
        self._bounds = tuple(bounds)
        self.interval = interval
        self._points = points
        self._exclude = frozenset(exclude)
        self._clock = clock
        self._times: deque[float] = deque(maxlen=points)
        self._series: dict[str, deque[Point]] = {}
        self._previous: dict[str, list[float]] | None = None

    def sample(self) -> None:
        """One reading: each block's point for the interval since the last one."""
        now = self._read()
        previous, self._previous = self._previous, now
        if previous is None:
            return
        totals: dict[str, list[float]] = {}
        for path, counts in now.items():
            if path in self._exclude:
                continue
            before = previous.get(path, ())
            delta = [count - (before[i] if i < len(before) else 0.0) for i, count in enumerate(counts)]
            summed = totals.setdefault(block_of(path), [0.0] * len(delta))
            for i, value in enumerate(delta):
                if i < len(summed):
                    summed[i] += value
        self._times.append(self._clock())
        filled = len(self._times)
        for block in totals.keys() - self._series.keys():
            series = self._series[block] = deque(maxlen=self._points)
            series.extend(Point(0.0, None, None) for _ in range(filled - 1))
        for block, series in self._series.items():
            cumulative = totals.get(block)
            if not cumulative or cumulative[-1] <= 0:
                series.append(Point(0.0, None, None))
                continue
            series.append(
                Point(
                    round(cumulative[-1] / self.interval, 3),
                    _ms(quantile(0.5, self._bounds, cumulative)),
                    _ms(quantile(0.99, self._bounds, cumulative)),
                )
            )

    def describe(self) -> dict[str, Any]:
        """The times (Unix seconds) and, per block, its series (``rps``, ``p50``, ``p99`` in ms,
        null where no request was answered)."""
        return {
            "intervalSeconds": self.interval,
            "times": [round(t, 3) for t in self._times],
            "blocks": {
                block: {
                    "rps": [point.rps for point in series],
                    "p50": [point.p50 for point in series],
                    "p99": [point.p99 for point in series],
                }
                for block, series in sorted(self._series.items())
            },
        }

    async def run(self) -> None:
        """Samples every ``interval`` seconds until cancelled."""
        self.sample()
        while True:
            await asyncio.sleep(self.interval)
            self.sample()


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
