"""A component's outbound calls (mesh/resiliency/outbound.py): the sidecar's deadline when no
policy applies, a Resiliency timeout in its place, retries that never resend a write whose outcome
is unknown, a store's refusals kept out of retries and the breaker. The same over real Redis and
real l8 processes is in tests/e2e/test_component_resiliency.py."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from components.errors import BackendError, ETagMismatchError, OutcomeUnknownError
from mesh.resiliency import Resiliency


def resiliency(policies: dict[str, Any], outbound: dict[str, str] | None = None) -> Resiliency:
    spec: dict[str, Any] = {"policies": policies}
    if outbound is not None:
        spec["targets"] = {"components": {"store": {"outbound": outbound}}}
    document = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Resiliency",
        "metadata": {"name": "r"},
        "spec": spec,
    }
    return Resiliency.from_resources([("Resiliency", document, "r.yaml")], "app")


RETRY = {"retries": {"fast": {"policy": "constant", "duration": "10ms", "maxRetries": 3}}}


class Store:
    """Fails its first ``failures`` calls with ``error``, then answers ``"ok"``."""

    def __init__(self, failures: int = 0, error: Exception | None = None, delay: float = 0.0) -> None:
        self.failures, self.error, self.delay = failures, error, delay
        self.calls = 0

    async def get(self, key: str) -> str:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.calls <= self.failures and self.error is not None:
            raise self.error
        return f"ok {key}"


async def test_without_a_policy_a_call_gets_the_deadline_and_nothing_else() -> None:
    outbound = Resiliency().component_calls("store", "state", 0.1)
    assert outbound.policy is None
    assert await outbound.call(Store().get, "k") == "ok k"
    started = time.monotonic()
    with pytest.raises(OutcomeUnknownError, match=r"store did not answer within 0.1s \(component_timeout\)"):
        await outbound.call(Store(delay=5).get, "k")
    assert time.monotonic() - started < 0.5
    failing = Store(failures=1, error=BackendError("down"))
    with pytest.raises(BackendError, match="down"):
        await outbound.call(failing.get, "k")
    assert failing.calls == 1, "no policy: one attempt"


async def test_a_zero_deadline_waits() -> None:
    outbound = Resiliency().component_calls("store", "state", 0)
    assert outbound.deadline is None
    assert await outbound.call(Store(delay=0.05).get, "k") == "ok k"


async def test_a_retry_policy_retries_a_failed_call() -> None:
    outbound = resiliency(RETRY, {"retry": "fast"}).component_calls("store", "state", 5)
    store = Store(failures=2, error=BackendError("connection refused"))
    assert await outbound.call(store.get, "k") == "ok k"
    assert store.calls == 3


async def test_a_non_idempotent_write_is_not_resent_after_an_unknown_outcome() -> None:
    outbound = resiliency(RETRY, {"retry": "fast"}).component_calls("store", "pubsub", 5)
    lost = Store(failures=1, error=OutcomeUnknownError("reply lost"))
    with pytest.raises(OutcomeUnknownError):
        await outbound.call_non_idempotent(lost.get, "k")
    assert lost.calls == 1
    refused = Store(failures=2, error=BackendError("connection refused"))
    assert await outbound.call_non_idempotent(refused.get, "k") == "ok k", "known not applied: resent"
    assert refused.calls == 3
    late = resiliency({**RETRY, "timeouts": {"short": "20ms"}}, {"retry": "fast", "timeout": "short"})
    slow = Store(delay=1)
    with pytest.raises(OutcomeUnknownError, match="resiliency timeout"):
        await late.component_calls("store", "pubsub", 5).call_non_idempotent(slow.get, "k")
    assert slow.calls == 1, "a timed-out write may have been applied"


async def test_a_resiliency_timeout_replaces_the_deadline() -> None:
    outbound = resiliency({"timeouts": {"short": "50ms"}}, {"timeout": "short"}).component_calls(
        "store", "state", 10
    )
    started = time.monotonic()
    with pytest.raises(OutcomeUnknownError, match=r"within 0.05s \(resiliency timeout\)"):
        await outbound.call(Store(delay=5).get, "k")
    assert time.monotonic() - started < 0.5


async def test_the_deadline_bounds_each_attempt_of_a_policy_without_a_timeout() -> None:
    outbound = resiliency(RETRY, {"retry": "fast"}).component_calls("store", "state", 0.05)
    slow = Store(delay=1)
    started = time.monotonic()
    with pytest.raises(OutcomeUnknownError):
        await outbound.call(slow.get, "k")
    assert slow.calls == 4, "one attempt and three retries, each cut at the deadline"
    assert time.monotonic() - started < 1.0


async def test_the_breaker_opens_answers_at_once_and_half_opens() -> None:
    breakers = {"circuitBreakers": {"cb": {"trip": "consecutiveFailures >= 2", "timeout": "200ms"}}}
    outbound = resiliency(breakers, {"circuitBreaker": "cb"}).component_calls("store", "state", 5)
    down = Store(failures=99, error=BackendError("down"))
    for _ in range(2):
        with pytest.raises(BackendError, match="down"):
            await outbound.call(down.get, "k")
    with pytest.raises(BackendError, match="circuit breaker 'cb-store-outbound' is open"):
        await outbound.call(down.get, "k")
    assert down.calls == 2, "an open breaker does not call the store"
    await asyncio.sleep(0.25)
    assert await outbound.call(Store().get, "k") == "ok k", "half-open: the probe goes through"
    assert outbound.policy is not None and outbound.policy.breaker is not None
    assert outbound.policy.breaker.state == "closed"


async def test_a_store_refusal_is_its_answer_not_a_failure() -> None:
    policies = {**RETRY, "circuitBreakers": {"cb": {"trip": "consecutiveFailures >= 2"}}}
    outbound = resiliency(policies, {"retry": "fast", "circuitBreaker": "cb"}).component_calls(
        "store", "state", 5
    )
    mismatch = Store(failures=99, error=ETagMismatchError())
    for _ in range(3):
        with pytest.raises(ETagMismatchError):
            await outbound.call(mismatch.get, "k")
    assert mismatch.calls == 3, "never retried"
    assert outbound.policy is not None and outbound.policy.breaker is not None
    assert outbound.policy.breaker.state == "closed", "never counted against the store"


async def test_dapr_default_outbound_policies_by_component_type() -> None:
    policies = {"retries": {"DefaultStatestoreComponentOutboundRetryPolicy": {"maxRetries": 1}}}
    defaults = resiliency(policies)
    state = defaults.component_calls("orders", "state", 5)
    assert state.policy is not None and state.policy.retry is not None
    assert state.policy.timeout == 5, "the deadline stands in for the missing timeout"
    assert defaults.component_calls("events", "pubsub", 5).policy is None


async def test_a_call_cancelled_by_someone_else_is_cancelled_not_late() -> None:
    """A client that goes away cancels the request: that cancellation is not the deadline's."""
    outbound = Resiliency().component_calls("store", "state", 0.2)
    call = asyncio.create_task(outbound.call(Store(delay=5).get, "k"))
    await asyncio.sleep(0.05)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_many_calls_share_the_deadline_and_the_task_goes_on_after_it() -> None:
    outbound = Resiliency().component_calls("store", "state", 0.1)
    outcomes = await asyncio.gather(
        *(outbound.call(Store(delay=5 if n % 2 else 0).get, str(n)) for n in range(20)),
        return_exceptions=True,
    )
    assert [isinstance(o, OutcomeUnknownError) for o in outcomes] == [n % 2 == 1 for n in range(20)]
    assert await outbound.call(Store(delay=0.02).get, "again") == "ok again", "the task goes on"


async def test_the_task_is_not_left_cancelled_after_the_deadline() -> None:
    outbound = Resiliency().component_calls("store", "state", 0.05)
    with pytest.raises(OutcomeUnknownError):
        await outbound.call(Store(delay=5).get, "k")
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.01)  # would raise CancelledError if a cancellation were still pending


async def test_a_deadline_and_another_cancellation_at_once_cancel() -> None:
    """Shutdown cancels a request whose call also ran out of time: the task stays cancelled."""
    outbound = Resiliency().component_calls("store", "state", 0.05)

    async def stubborn(key: str) -> str:
        try:
            await asyncio.sleep(5)
        finally:
            await asyncio.sleep(0.1)  # still running when the deadline's tick fires
        return key

    call = asyncio.create_task(outbound.call(stubborn, "k"))
    await asyncio.sleep(0.02)
    call.cancel()
    await asyncio.sleep(0.1)
    with pytest.raises(asyncio.CancelledError):
        await call
