"""The last error answers a sidecar gave (for the dashboard): what the error door sent, on which
route, when. Recorded only when an error is answered, so the way of a request that succeeds costs
nothing."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KEPT = 50
"""Errors kept; the oldest goes first."""
_LONGEST = 500
"""Characters of a message or a path kept."""


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    time: float
    status: int
    code: str
    message: str
    method: str
    route: str
    """The route's template, or the request's path when no route took it."""

    def describe(self) -> dict[str, Any]:
        return {
            "time": round(self.time, 3),
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "method": self.method,
            "route": self.route,
        }


class RecentErrors:
    def __init__(self, kept: int = KEPT, clock: Callable[[], float] = time.time) -> None:
        self._answers: deque[ErrorAnswer] = deque(maxlen=kept)
        self._clock = clock

    def record(self, status: int, code: str, message: str, method: str, route: str) -> None:
        self._answers.append(
            ErrorAnswer(self._clock(), status, code, message[:_LONGEST], method, route[:_LONGEST])
        )

    def describe(self) -> list[dict[str, Any]]:
        """Newest first."""
        return [answer.describe() for answer in reversed(self._answers)]

    def __len__(self) -> int:
        return len(self._answers)
