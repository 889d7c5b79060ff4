"""Circuit breakers: gobreaker's state machine as daprd uses it.

``trip`` (a CEL expression over ``consecutiveFailures``, ``totalFailures``, ``requests``...; default
``consecutiveFailures > 5``) is checked after each failure while closed; open rejects calls for
``timeout`` (default 60s), then half-open lets ``maxRequests`` (default 1) probes through: success
closes, failure re-opens. ``interval`` (default 0: never) clears the counts of a closed breaker
periodically.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)


class CircuitOpenError(Exception):
    """The circuit breaker rejected the call without making it (open, or half-open and busy)."""


@dataclass(slots=True, frozen=True)
class CircuitBreakerSpec:
    name: str
    max_requests: int = 1
    interval: float = 0.0
    timeout: float = 60.0
    trip: str = "consecutiveFailures > 5"


@dataclass(slots=True)
class _Counts:
    requests: int = 0
    total_successes: int = 0
    total_failures: int = 0
    consecutive_successes: int = 0
    consecutive_failures: int = 0

    def as_cel(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "totalSuccesses": self.total_successes,
            "totalFailures": self.total_failures,
            "consecutiveSuccesses": self.consecutive_successes,
            "consecutiveFailures": self.consecutive_failures,
        }


class CircuitBreaker:
    """One breaker instance (gobreaker's state machine); ``clock`` is injectable for tests."""

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

    def __init__(self, spec: CircuitBreakerSpec, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self._clock = clock
        self._trip = compile_trip(spec.trip)
        self._state = self.CLOSED
        self._counts = _Counts()
        self._generation = 0
        self._expiry = self._closed_expiry(clock())

    @property
    def state(self) -> str:
        self._current(self._clock())
        return self._state

    def before(self) -> int:
        """Admit one call (returns its generation) or raise :class:`CircuitOpenError`."""
        now = self._clock()
        self._current(now)
        if self._state == self.OPEN:
            raise CircuitOpenError(f"circuit breaker {self.spec.name!r} is open")
        if self._state == self.HALF_OPEN and self._counts.requests >= max(self.spec.max_requests, 1):
            raise CircuitOpenError(f"circuit breaker {self.spec.name!r} is half-open: too many requests")
        self._counts.requests += 1
        return self._generation

    def after(self, generation: int, success: bool) -> None:
        now = self._clock()
        self._current(now)
        if generation != self._generation:
            return  # the result of a call admitted before the last state change
        counts = self._counts
        if success:
            counts.total_successes += 1
            counts.consecutive_successes += 1
            counts.consecutive_failures = 0
            if self._state == self.HALF_OPEN and counts.consecutive_successes >= max(
                self.spec.max_requests, 1
            ):
                self._set(self.CLOSED, now)
            return
        counts.total_failures += 1
        counts.consecutive_failures += 1
        counts.consecutive_successes = 0
        if self._state == self.HALF_OPEN or (self._state == self.CLOSED and self._trip(counts.as_cel())):
            self._set(self.OPEN, now)

    def _current(self, now: float) -> None:
        if self._state == self.CLOSED and self._expiry and self._expiry <= now:
            self._new_generation(now)
        elif self._state == self.OPEN and self._expiry <= now:
            self._set(self.HALF_OPEN, now)

    def _set(self, state: str, now: float) -> None:
        if state == self._state:
            return
        log.info("circuit breaker changed state", breaker=self.spec.name, old=self._state, new=state)
        self._state = state
        self._new_generation(now)

    def _new_generation(self, now: float) -> None:
        self._generation += 1
        self._counts = _Counts()
        if self._state == self.CLOSED:
            self._expiry = self._closed_expiry(now)
        elif self._state == self.OPEN:
            self._expiry = now + (self.spec.timeout or 60.0)
        else:
            self._expiry = 0.0

    def _closed_expiry(self, now: float) -> float:
        return now + self.spec.interval if self.spec.interval > 0 else 0.0


def compile_trip(expression: str) -> Callable[[dict[str, int]], bool]:
    import celpy  # only loaded when a breaker is configured

    environment = celpy.Environment()
    program = environment.program(environment.compile(expression))

    def trip(counts: dict[str, int]) -> bool:
        # gobreaker/daprd: an evaluation error or a non-bool result never trips.
        try:
            result = program.evaluate({name: celpy.celtypes.IntType(v) for name, v in counts.items()})
        except Exception:
            return False
        return isinstance(result, celpy.celtypes.BoolType) and bool(result)

    return trip
