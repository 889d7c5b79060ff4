"""Resiliency resources and the policies they give: parsing, errors, backoff, precedence."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from components.errors import MetadataError
from components.resources import ResourceError
from mesh.resiliency import (
    CircuitBreaker,
    CircuitBreakerSpec,
    CircuitOpenError,
    Policy,
    Resiliency,
    RetriableFailure,
    RetryPolicy,
    parse_duration,
    retry_from_metadata,
)


def document(
    spec: dict[str, Any], *, name: str = "res", scopes: list[str] | None = None, **top: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Resiliency",
        "metadata": {"name": name},
        "spec": spec,
    }
    if scopes is not None:
        doc["scopes"] = scopes
    doc.update(top)
    return doc


def load(*docs: dict[str, Any], app_id: str = "myapp") -> Resiliency:
    return Resiliency.from_resources(
        [("Resiliency", doc, f"/res/{i}.yaml") for i, doc in enumerate(docs)], app_id
    )


FULL = {
    "policies": {
        "timeouts": {"general": "5s", "fast": 250},
        "retries": {
            "pubsubRetry": {"policy": "constant", "duration": "100ms", "maxRetries": 3},
            "expo": {
                "policy": "exponential",
                "maxInterval": "15s",
                "maxRetries": -1,
                "matching": {"httpStatusCodes": "429,500-599"},
            },
        },
        "circuitBreakers": {
            "cb": {"maxRequests": 1, "interval": "8s", "timeout": "45s", "trip": "consecutiveFailures > 8"}
        },
    },
    "targets": {
        "apps": {"other": {"timeout": "general", "retry": "expo"}},
        "components": {
            "pubsub": {
                "inbound": {"timeout": "fast", "retry": "pubsubRetry", "circuitBreaker": "cb"},
                "outbound": {"retry": "expo"},
            }
        },
        "actors": {"myActor": {"timeout": "general", "circuitBreakerScope": "both"}},
    },
}


def test_a_full_document_is_parsed() -> None:
    resiliency = load(document(FULL))
    assert resiliency.timeouts == {"general": 5.0, "fast": 0.25}
    assert resiliency.retries["pubsubRetry"] == RetryPolicy(policy="constant", duration=0.1, max_retries=3)
    expo = resiliency.retries["expo"]
    assert (expo.policy, expo.max_interval, expo.max_retries) == ("exponential", 15.0, -1)
    assert expo.http_status_codes == ((429, 429), (500, 599))
    assert resiliency.circuit_breakers["cb"] == CircuitBreakerSpec(
        "cb", 1, 8.0, 45.0, "consecutiveFailures > 8"
    )
    assert resiliency.apps["other"].retry == "expo"
    assert resiliency.actors["myActor"]["circuitBreakerScope"] == "both"

    inbound = resiliency.component_inbound("pubsub")
    assert inbound.timeout == 0.25
    assert inbound.retry == resiliency.retries["pubsubRetry"]
    assert inbound.breaker is not None and inbound.breaker.spec.trip == "consecutiveFailures > 8"
    assert resiliency.component_inbound("pubsub").breaker is inbound.breaker  # one breaker per target
    outbound = resiliency.component_outbound("pubsub")
    assert outbound.retry == expo and outbound.timeout is None and outbound.breaker is None


def test_retry_defaults_are_dapr_kits() -> None:
    resiliency = load(document({"policies": {"retries": {"r": {}}}}))
    assert resiliency.retries["r"] == RetryPolicy(
        policy="constant",
        duration=5.0,
        initial_interval=0.5,
        randomization_factor=0.5,
        multiplier=1.5,
        max_interval=60.0,
        max_elapsed_time=900.0,
        max_retries=-1,
    )


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5s", 5.0),
        ("1m30s", 90.0),
        ("250ms", 0.25),
        ("1h", 3600.0),
        (1500, 1.5),
        ("1500", 1.5),
        ("0", 0.0),
        ("1.5s", 1.5),
    ],
)
def test_durations_are_go_durations_or_milliseconds(value: Any, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


def test_out_of_scope_documents_are_ignored() -> None:
    spec = {
        "policies": {"retries": {"r": {"maxRetries": 1}}},
        "targets": {"components": {"pubsub": {"inbound": {"retry": "r"}}}},
    }
    assert load(document(spec, scopes=["someone-else"])).component_inbound("pubsub").retry is None
    assert load(document(spec, scopes=["myapp"])).component_inbound("pubsub").retry is not None
    assert load(document(spec, scopes=[])).component_inbound("pubsub").retry is not None


def test_documents_are_merged_and_targets_may_name_policies_of_another() -> None:
    policies = document({"policies": {"retries": {"r": {"maxRetries": 2}}}}, name="policies")
    targets = document({"targets": {"components": {"pubsub": {"inbound": {"retry": "r"}}}}}, name="targets")
    resiliency = load(targets, policies)
    assert resiliency.component_inbound("pubsub").retry == RetryPolicy(max_retries=2)
    assert resiliency.names == ["targets", "policies"]


def test_other_kinds_are_not_read() -> None:
    resiliency = Resiliency.from_resources([("Subscription", {"spec": "nonsense"}, "/s.yaml")], "myapp")
    assert resiliency.names == []


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (lambda d: d.update(apiVersion="dapr.io/v2"), "apiVersion", "apiVersion must be"),
        (lambda d: d.update(metadata={}), "metadata.name", "no metadata.name"),
        (lambda d: d.update(scopes="myapp"), "scopes", "list of app ids"),
        (lambda d: d.update(spec=[]), "spec", "mapping"),
        (
            lambda d: d["spec"]["policies"]["timeouts"].update(bad="5 seconds"),
            "spec.policies.timeouts.bad",
            "not a duration",
        ),
        (
            lambda d: d["spec"]["policies"]["retries"].update(bad={"policy": "linear"}),
            "spec.policies.retries.bad.policy",
            "retry policy",
        ),
        (
            lambda d: d["spec"]["policies"]["retries"].update(bad={"maxRetries": "many"}),
            "spec.policies.retries.bad.maxRetries",
            "not an integer",
        ),
        (
            lambda d: d["spec"]["policies"]["retries"].update(bad={"duration": "-5s"}),
            "spec.policies.retries.bad.duration",
            "negative",
        ),
        (
            lambda d: d["spec"]["policies"]["retries"].update(bad={"maxRetires": 3}),
            "spec.policies.retries.bad.maxRetires",
            "unknown retry field",
        ),
        (
            lambda d: d["spec"]["policies"]["retries"].update(
                bad={"matching": {"httpStatusCodes": "500-400"}}
            ),
            "spec.policies.retries.bad.matching.httpStatusCodes",
            "start above its end",
        ),
        (
            lambda d: d["spec"]["policies"]["retries"].update(bad={"matching": {"httpStatusCodes": "700"}}),
            "spec.policies.retries.bad.matching.httpStatusCodes",
            "outside",
        ),
        (
            lambda d: d["spec"]["policies"]["circuitBreakers"].update(bad={"trip": "consecutiveFailures >"}),
            "spec.policies.circuitBreakers.bad.trip",
            "invalid CEL",
        ),
        (
            lambda d: d["spec"]["policies"]["circuitBreakers"].update(bad={"maxRequests": -1}),
            "spec.policies.circuitBreakers.bad.maxRequests",
            "non-negative integer",
        ),
        (
            lambda d: d["spec"]["targets"]["components"]["pubsub"]["inbound"].update(retry="nope"),
            "spec.targets.components.pubsub.inbound.retry",
            "undefined retry policy 'nope'",
        ),
        (
            lambda d: d["spec"]["targets"]["components"]["pubsub"]["inbound"].update(timeOut="fast"),
            "spec.targets.components.pubsub.inbound.timeOut",
            "unknown field",
        ),
        (
            lambda d: d["spec"]["targets"]["apps"]["other"].update(circuitBreaker="nope"),
            "spec.targets.apps.other.circuitBreaker",
            "undefined circuitBreaker policy",
        ),
    ],
)
def test_an_invalid_document_names_file_and_field(mutate: Any, field: str, message: str) -> None:
    import copy

    doc = document(copy.deepcopy(FULL), name="broken")
    mutate(doc)
    with pytest.raises(ResourceError) as caught:
        load(doc)
    text = str(caught.value)
    assert text.startswith("/res/0.yaml: ")
    assert f"field {field!r}" in text
    assert message in text
    if field != "metadata.name":
        assert "Resiliency 'broken'" in text


# -- backoff ---------------------------------------------------------------------------------------


def test_constant_delays() -> None:
    assert list(RetryPolicy(policy="constant", duration=0.2, max_retries=3).delays()) == [0.2, 0.2, 0.2]
    assert list(RetryPolicy(max_retries=0).delays()) == []


def test_exponential_delays_grow_to_the_cap_with_randomization() -> None:
    plain = RetryPolicy(
        policy="exponential",
        initial_interval=0.1,
        multiplier=2,
        max_interval=0.5,
        randomization_factor=0,
        max_retries=6,
    )
    assert list(plain.delays()) == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5, 0.5])
    randomized = RetryPolicy(
        policy="exponential", initial_interval=1.0, multiplier=1, randomization_factor=0.5, max_retries=2
    )
    assert list(randomized.delays(rng=lambda: 0.0)) == [0.5, 0.5]
    assert list(randomized.delays(rng=lambda: 0.999999)) == pytest.approx([1.5, 1.5])


def test_forever_means_forever() -> None:
    delays = RetryPolicy(policy="constant", duration=0.01, max_retries=-1).delays()
    assert len([next(delays) for _ in range(1000)]) == 1000


class Attempts:
    """An attempt function failing ``failures`` times (with ``status``), recording call times."""

    def __init__(self, failures: int, status: int | None = 500) -> None:
        self.failures = failures
        self.status = status
        self.times: list[float] = []

    async def __call__(self) -> str:
        self.times.append(time.monotonic())
        if len(self.times) <= self.failures:
            raise RetriableFailure("no", self.status)
        return "done"

    @property
    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]


async def test_no_policy_is_one_attempt() -> None:
    attempts = Attempts(failures=1)
    with pytest.raises(RetriableFailure):
        await Resiliency().component_inbound("pubsub").run(attempts)
    assert len(attempts.times) == 1


async def test_constant_policy_timing_and_max_retries() -> None:
    policy = Policy("p", retry=RetryPolicy(policy="constant", duration=0.05, max_retries=2))
    attempts = Attempts(failures=5)
    with pytest.raises(RetriableFailure):
        await policy.run(attempts)
    assert len(attempts.times) == 3  # one attempt and two retries
    assert all(0.045 <= gap < 0.2 for gap in attempts.gaps)
    succeeding = Attempts(failures=2)
    assert await policy.run(succeeding) == "done"
    assert len(succeeding.times) == 3


async def test_exponential_policy_timing() -> None:
    policy = Policy(
        "p",
        retry=RetryPolicy(
            policy="exponential",
            initial_interval=0.02,
            multiplier=2,
            randomization_factor=0,
            max_interval=0.08,
            max_retries=4,
        ),
    )
    attempts = Attempts(failures=10)
    with pytest.raises(RetriableFailure):
        await policy.run(attempts)
    assert len(attempts.times) == 5
    for gap, expected in zip(attempts.gaps, [0.02, 0.04, 0.08, 0.08], strict=True):
        assert expected * 0.9 <= gap < expected + 0.1


async def test_exponential_stops_at_max_elapsed_time() -> None:
    policy = Policy(
        "p",
        retry=RetryPolicy(
            policy="exponential",
            initial_interval=0.03,
            multiplier=1,
            randomization_factor=0,
            max_elapsed_time=0.1,
            max_retries=-1,
        ),
    )
    attempts = Attempts(failures=100)
    with pytest.raises(RetriableFailure):
        await policy.run(attempts)
    assert 3 <= len(attempts.times) <= 4


async def test_matching_limits_retried_statuses() -> None:
    policy = Policy("p", retry=RetryPolicy(duration=0.001, max_retries=5, http_status_codes=((500, 599),)))
    not_retried = Attempts(failures=3, status=409)
    with pytest.raises(RetriableFailure):
        await policy.run(not_retried)
    assert len(not_retried.times) == 1
    retried = Attempts(failures=3, status=503)
    assert await policy.run(retried) == "done"
    unreachable = Attempts(failures=3, status=None)  # no status: always retried
    assert await policy.run(unreachable) == "done"


async def test_timeout_applies_per_attempt_and_is_retried() -> None:
    calls = 0

    async def slow_then_fast() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(1)
        return "fast"

    policy = Policy("p", timeout=0.05, retry=RetryPolicy(duration=0.001, max_retries=1))
    assert await policy.run(slow_then_fast) == "fast"
    with pytest.raises(TimeoutError):
        await Policy("p", timeout=0.05).run(lambda: asyncio.sleep(1))


# -- component metadata fallback and precedence ------------------------------------------------------


def test_component_metadata_gives_a_retry_policy() -> None:
    assert retry_from_metadata({"redisHost": "x"}) is None
    policy = retry_from_metadata(
        {
            "backOffPolicy": "exponential",
            "BACKOFFMAXRETRIES": "4",
            "backOffInitialInterval": "100ms",
            "backOffMaxInterval": "2s",
            "backOffMultiplier": "2",
            "backOffDuration": "300",
        }
    )
    assert policy == RetryPolicy(
        policy="exponential",
        max_retries=4,
        initial_interval=0.1,
        max_interval=2.0,
        multiplier=2.0,
        duration=0.3,
    )
    # dapr/kit's defaults fill the rest: constant every 5s, forever.
    assert retry_from_metadata({"backOffPolicy": "constant"}) == RetryPolicy()


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"backOffPolicy": "sometimes"}, "backOffPolicy"),
        ({"backOffMaxRetries": "x"}, "backOffMaxRetries"),
        ({"backOffDuration": "soon"}, "backOffDuration"),
        ({"backOffMultiplier": "big"}, "backOffMultiplier"),
    ],
)
def test_bad_component_retry_metadata_names_the_field(metadata: dict[str, str], field: str) -> None:
    with pytest.raises(MetadataError) as caught:
        retry_from_metadata(metadata)
    assert caught.value.field == field


def test_precedence_target_over_metadata_over_nothing() -> None:
    metadata = {"backOffMaxRetries": "7", "backOffDuration": "10ms"}
    nothing = Resiliency()
    assert nothing.component_inbound("pubsub").retry is None
    assert nothing.component_inbound("pubsub", metadata).retry == RetryPolicy(max_retries=7, duration=0.01)
    targeted = load(
        document(
            {
                "policies": {"retries": {"r": {"maxRetries": 1}}},
                "targets": {"components": {"pubsub": {"inbound": {"retry": "r"}}}},
            }
        )
    )
    assert targeted.component_inbound("pubsub", metadata).retry == RetryPolicy(max_retries=1)
    # A target for another component leaves this one to its metadata.
    assert targeted.component_inbound("other", metadata).retry == RetryPolicy(max_retries=7, duration=0.01)
    # Outbound never reads the inbound backOff settings.
    assert nothing.component_outbound("pubsub").retry is None


def test_default_policies_apply_to_targets_without_their_own() -> None:
    resiliency = load(
        document(
            {
                "policies": {
                    "retries": {
                        "DefaultComponentInboundRetryPolicy": {"maxRetries": 2},
                        "DefaultRetryPolicy": {"maxRetries": 9},
                        "DefaultPubsubComponentInboundRetryPolicy": {"maxRetries": 3},
                    },
                    "timeouts": {"DefaultTimeoutPolicy": "3s"},
                }
            }
        )
    )
    inbound = resiliency.component_inbound("anything")
    assert inbound.retry == RetryPolicy(max_retries=3) and inbound.timeout == 3.0
    assert resiliency.component_inbound("state", component_type="state").retry == RetryPolicy(max_retries=2)
    assert resiliency.component_outbound("anything").retry == RetryPolicy(max_retries=9)


# -- circuit breaker ---------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_trips_after_consecutive_failures_and_probes_half_open() -> None:
    clock = Clock()
    breaker = CircuitBreaker(
        CircuitBreakerSpec("cb", max_requests=1, timeout=30, trip="consecutiveFailures > 2"), clock
    )
    for _ in range(3):
        breaker.after(breaker.before(), success=False)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        breaker.before()
    clock.now += 30
    assert breaker.state == "half-open"
    probe = breaker.before()
    with pytest.raises(CircuitOpenError, match="too many requests"):
        breaker.before()
    breaker.after(probe, success=False)
    assert breaker.state == "open"
    clock.now += 30
    breaker.after(breaker.before(), success=True)
    assert breaker.state == "closed"


def test_breaker_success_resets_consecutive_failures_and_interval_clears_counts() -> None:
    clock = Clock()
    breaker = CircuitBreaker(CircuitBreakerSpec("cb", interval=10, trip="totalFailures >= 3"), clock)
    breaker.after(breaker.before(), success=False)
    breaker.after(breaker.before(), success=False)
    clock.now += 11  # the interval clears the counts
    breaker.after(breaker.before(), success=False)
    assert breaker.state == "closed"
    breaker.after(breaker.before(), success=False)
    breaker.after(breaker.before(), success=False)
    assert breaker.state == "open"


async def test_open_breaker_stops_retries_at_once() -> None:
    breaker = CircuitBreaker(CircuitBreakerSpec("cb", trip="consecutiveFailures >= 2"))
    policy = Policy("p", retry=RetryPolicy(duration=0.001, max_retries=10), breaker=breaker)
    attempts = Attempts(failures=100)
    with pytest.raises(CircuitOpenError):
        await policy.run(attempts)
    assert len(attempts.times) == 2
