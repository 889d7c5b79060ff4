"""The policy applied to one call: a timeout per attempt, retries with backoff, a circuit breaker.

:meth:`Policy.run` is what callers (pub/sub delivery, bulk delivery) wrap an attempt in; they raise
:class:`RetriableFailure` to report a failure with its HTTP status so the retry's ``matching`` can
decide whether it is retried.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

from mesh.resiliency.breaker import CircuitBreaker, CircuitOpenError
from mesh.resiliency.retry import RetryPolicy
from observability.metrics import PolicyMetrics

log = structlog.get_logger(__name__)

T = TypeVar("T")


class RetriableFailure(Exception):
    """An attempt failed in a way a retry policy may retry; ``status`` is the HTTP status, if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class Policy:
    """What applies to one target: a timeout per attempt, retries, a circuit breaker. An empty
    policy makes exactly one attempt."""

    name: str
    timeout: float | None = None
    retry: RetryPolicy | None = None
    breaker: CircuitBreaker | None = None
    answers: tuple[type[Exception], ...] = ()
    """Failures that are the target's answer, not its fault (an ETag mismatch): neither retried
    nor counted by the circuit breaker."""
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    rng: Callable[[], float] = field(default=random.random, repr=False)
    metrics: PolicyMetrics | None = field(default=None, repr=False)
    """Dapr's resiliency metrics for this target, when metrics are on."""

    async def run(
        self, attempt: Callable[[], Awaitable[T]], retryable: Callable[[Exception], bool] | None = None
    ) -> T:
        """Call ``attempt`` until it returns, applying the timeout to each call and retrying any
        ``Exception`` (a timeout included) with backoff; the last failure is raised once the
        policy gives up. A :class:`RetriableFailure` whose status the retry's ``matching`` leaves
        out, a failure ``retryable`` refuses, one of the ``answers`` types, and
        :class:`CircuitOpenError`, are raised at once. Cancellation is never retried."""
        if self.retry is None and self.breaker is None and not self.timeout:
            return await attempt()  # the empty policy: one plain attempt
        metrics = self.metrics
        if metrics is not None:
            for kind, part in (
                ("timeout", self.timeout),
                ("retry", self.retry),
                ("circuitbreaker", self.breaker),
            ):
                if part:
                    metrics.applied(kind)
        delays = self.retry.delays(self.rng) if self.retry is not None else iter(())
        started = self.clock()
        retried = 0
        while True:
            try:
                return await self._attempt(attempt)
            except CircuitOpenError:
                raise
            except Exception as exc:
                if self.retry is None or isinstance(exc, self.answers):
                    raise
                if retryable is not None and not retryable(exc):
                    raise
                if isinstance(exc, RetriableFailure) and not self.retry.retries_status(exc.status):
                    raise
                delay = next(delays, None)
                if delay is None:
                    raise
                elapsed_limit = self.retry.max_elapsed_time if self.retry.policy == "exponential" else 0
                if elapsed_limit and self.clock() - started + delay > elapsed_limit:
                    raise
                retried += 1
                if metrics is not None:
                    metrics.activated("retry")
                log.debug(
                    "attempt failed, retrying", policy=self.name, retry=retried, delay=delay, error=str(exc)
                )
            await self.sleep(delay)

    async def _attempt(self, attempt: Callable[[], Awaitable[T]]) -> T:
        generation = self.breaker.before() if self.breaker is not None else 0
        try:
            if self.timeout:
                async with asyncio.timeout(self.timeout):
                    result = await attempt()
            else:
                result = await attempt()
        except BaseException as exc:  # a cancelled call counts as failed, or a half-open probe would stick
            if self.metrics is not None and isinstance(exc, TimeoutError) and self.timeout:
                self.metrics.activated("timeout")
            if self.breaker is not None:
                self._breaker_after(generation, isinstance(exc, self.answers))
            raise
        if self.breaker is not None:
            self._breaker_after(generation, True)
        return result

    def _breaker_after(self, generation: int, success: bool) -> None:
        assert self.breaker is not None
        if self.metrics is None:
            self.breaker.after(generation, success=success)
            return
        before = self.breaker.state
        self.breaker.after(generation, success=success)
        if self.breaker.state != before:  # Dapr counts a breaker's change of state as an activation
            self.metrics.activated("circuitbreaker", self.breaker.state)
