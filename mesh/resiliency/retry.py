"""Retry policies: dapr/kit's ``retry.Config``, its backoff, and which failures it retries.

Retry values follow dapr/kit's ``retry.Config``: ``policy`` constant (``duration``, default 5s) or
exponential (``initialInterval`` 500ms, ``multiplier`` 1.5, ``randomizationFactor`` 0.5,
``maxInterval`` 60s, ``maxElapsedTime`` 15m), ``maxRetries`` (default -1, forever). Durations are
Go durations or a bare integer of milliseconds. ``matching.httpStatusCodes`` (``"429,500-599"``)
limits which HTTP failures are retried; a failure without a status (the app unreachable) is always
retried.

A pub/sub component may carry the same retry settings in its metadata under dapr/kit's
``backOff`` prefix (``backOffPolicy``, ``backOffDuration``, ``backOffMaxRetries``...), read by
:func:`retry_from_metadata`. A Resiliency retry policy for the component's inbound direction wins
over them; with neither, delivery is one attempt and the broker's redelivery is the only retry
(Dapr's default).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from components.errors import MetadataError
from mesh.resiliency.durations import parse_duration


@dataclass(slots=True, frozen=True)
class RetryPolicy:
    """dapr/kit's ``retry.Config`` with its defaults (durations in seconds)."""

    policy: str = "constant"
    duration: float = 5.0
    initial_interval: float = 0.5
    randomization_factor: float = 0.5
    multiplier: float = 1.5
    max_interval: float = 60.0
    max_elapsed_time: float = 900.0
    """Exponential only: stop retrying once this much time has passed (0: never)."""
    max_retries: int = -1
    """Retries after the first attempt; -1 retries forever."""
    http_status_codes: tuple[tuple[int, int], ...] = ()
    """``matching.httpStatusCodes`` as inclusive ranges; empty: every status is retried."""

    def delays(self, rng: Callable[[], float] = random.random) -> Iterator[float]:
        """The pauses before each retry, in order; the iterator ends when retries are exhausted
        (``max_elapsed_time`` is checked by :meth:`Policy.run`, which knows the clock)."""
        retries = 0
        interval = self.initial_interval
        while self.max_retries < 0 or retries < self.max_retries:
            retries += 1
            if self.policy == "constant":
                yield self.duration
                continue
            # cenkalti/backoff: a random value in [interval*(1-f), interval*(1+f)], then grow.
            delta = self.randomization_factor * interval
            low = interval - delta
            yield low + rng() * (2 * delta)
            interval = min(interval * self.multiplier, self.max_interval)

    def retries_status(self, status: int | None) -> bool:
        """Whether a failure with this HTTP status may be retried (no status: always)."""
        if status is None or not self.http_status_codes:
            return True
        return any(low <= status <= high for low, high in self.http_status_codes)


RETRY_FIELDS: dict[str, str] = {
    "policy": "policy",
    "duration": "duration",
    "initialinterval": "initial_interval",
    "randomizationfactor": "randomization_factor",
    "multiplier": "multiplier",
    "maxinterval": "max_interval",
    "maxelapsedtime": "max_elapsed_time",
    "maxretries": "max_retries",
}
_DURATION_FIELDS = {"duration", "initial_interval", "max_interval", "max_elapsed_time"}


def retry_value(attribute: str, value: Any) -> Any:
    """One retry setting decoded; raises ValueError with the reason."""
    if attribute == "policy":
        text = str(value).strip().lower()
        if text not in ("constant", "exponential"):
            raise ValueError(f"{value!r} is not a retry policy (constant or exponential)")
        return text
    if attribute in _DURATION_FIELDS:
        seconds = parse_duration(value)
        if seconds < 0:
            raise ValueError(f"{value!r} must not be negative")
        return seconds
    if attribute == "max_retries":
        if isinstance(value, bool) or not re.fullmatch(r"-?\d+", str(value).strip()):
            raise ValueError(f"{value!r} is not an integer")
        retries = int(str(value).strip())
        return -1 if retries < 0 else retries
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a number") from None
    if number < 0:
        raise ValueError(f"{value!r} must not be negative")
    return number


def parse_status_ranges(patterns: str) -> tuple[tuple[int, int], ...]:
    """``"429,500-599"`` as inclusive ranges of HTTP statuses (100..599), as daprd parses
    ``matching.httpStatusCodes``."""
    ranges: list[tuple[int, int]] = []
    for pattern in str(patterns).split(","):
        pattern = pattern.strip()
        if not pattern:
            continue
        parts = pattern.split("-")
        if len(parts) > 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"invalid status code pattern {pattern!r}")
        low, high = int(parts[0]), int(parts[-1])
        if not (100 <= low <= 599 and 100 <= high <= 599):
            raise ValueError(f"status code pattern {pattern!r} is outside 100-599")
        if high < low:
            raise ValueError(f"status code pattern {pattern!r} has its start above its end")
        ranges.append((low, high))
    return tuple(ranges)


def retry_from_metadata(metadata: Mapping[str, str]) -> RetryPolicy | None:
    """A component's ``backOff*`` retry settings (dapr/kit names, case-insensitive), or ``None``
    when it has none. Raises :class:`MetadataError` naming the field."""
    values: dict[str, Any] = {}
    for key, value in metadata.items():
        lowered = key.lower()
        if not lowered.startswith("backoff"):
            continue
        attribute = RETRY_FIELDS.get(lowered.removeprefix("backoff"))
        if attribute is None:
            continue
        try:
            values[attribute] = retry_value(attribute, value)
        except ValueError as exc:
            raise MetadataError(key, str(exc)) from None
    return RetryPolicy(**values) if values else None
