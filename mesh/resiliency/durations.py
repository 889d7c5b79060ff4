"""Go durations as dapr/kit decodes them: ``1m30s``, ``250ms``, or a bare integer of milliseconds.

Every duration in a ``Resiliency`` document (timeouts, retry intervals, breaker ``interval`` and
``timeout``) and in a component's ``backOff*`` metadata goes through :func:`parse_duration`.
"""

from __future__ import annotations

import re
from typing import Any

_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """Seconds from a Go duration (``1m30s``, ``250ms``) or a bare integer of milliseconds, as
    dapr/kit decodes durations."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int):
        return value / 1000
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text) / 1000
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if not body or _GO_DURATION.sub("", body) != "":
        raise ValueError(f"{value!r} is not a duration (use e.g. 500ms, 5s, 1m)")
    return sign * sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _GO_DURATION.findall(body))
