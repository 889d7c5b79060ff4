"""Rate-limit rules and buckets without a network, and the Redis bucket against a real Redis (the
end-to-end behaviour is in tests/e2e/test_rate_limits.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from mesh.errors import SettingsError
from mesh.ratelimit import RateLimits, parse_rate_limits
from mesh.ratelimit import build_rate_limits as build_from
from mesh.ratelimit.buckets import LocalBuckets, RedisBuckets
from mesh.ratelimit.rules import Rule, RuleSettings
from tests.servers import RedisServer


def parse_rule(raw: dict[str, Any], where: str, index: int) -> Rule:
    """The rule of one entry of ``rate_limits.rules``."""
    return RuleSettings.model_validate(raw).rule(index)


def build_rate_limits(
    raw: dict[str, Any], configurations: list[Any], middleware: dict[str, Any], app_id: str
) -> RateLimits:
    """The limiter of ``rate_limits`` as the settings file gives it."""
    return build_from(parse_rate_limits(raw), configurations, middleware, app_id)


def test_a_bucket_lets_its_burst_through_then_refuses_with_the_time_to_the_next_token() -> None:
    buckets = LocalBuckets(rate=10.0, burst=3, max_wait=0.0)
    assert [buckets.take("").granted for _ in range(4)] == [True, True, True, False]
    refused = buckets.take("")
    assert not refused.granted and 0.05 < refused.wait <= 0.1
    assert buckets.take("other").granted  # each key its own bucket
    time.sleep(0.11)
    assert buckets.take("").granted


def test_a_queueing_bucket_reserves_tokens_in_turn_up_to_the_longest_wait() -> None:
    buckets = LocalBuckets(rate=10.0, burst=1, max_wait=0.25)
    waits = [buckets.take("") for _ in range(4)]
    assert [v.granted for v in waits] == [True, True, True, False]
    assert waits[0].wait == 0 and waits[1].wait == pytest.approx(0.1, abs=0.01)
    assert waits[2].wait == pytest.approx(0.2, abs=0.01)
    assert waits[3].wait == pytest.approx(0.05, abs=0.01)  # the 4th would wait 0.3 s: 0.05 s too long


def test_the_least_recently_used_keys_are_dropped_past_the_cap() -> None:
    buckets = LocalBuckets(rate=1.0, burst=1, max_wait=0.0, max_keys=2)
    for key in ("a", "b", "a", "c"):  # "b" is the least recently used when "c" comes
        buckets.take(key)
    assert not buckets.take("a").granted and buckets.take("b").granted


def test_rules_match_on_every_selector_they_name() -> None:
    rule = parse_rule(
        {"resource": "/v1.0/invoke/*", "methods": ["post"], "target": {"app": "orders", "method": "pay*"},
         "caller": "web", "threshold": 5},
        "r", 0,
    )  # fmt: skip
    assert rule.name == "rule-0" and rule.rate == 5.0
    assert rule.matches("POST", "/v1.0/invoke/orders/method/pay/1", ("orders", "pay/1"), "web")
    assert not rule.matches("GET", "/v1.0/invoke/orders/method/pay/1", ("orders", "pay/1"), "web")
    assert not rule.matches("POST", "/v1.0/invoke/orders/method/list", ("orders", "list"), "web")
    assert not rule.matches("POST", "/v1.0/invoke/orders/method/pay", ("orders", "pay"), "other")
    sentinel = parse_rule(
        {"resource": "/x", "threshold": 2, "statIntervalInMs": 500, "controlBehavior": 1, "maxQueueingTimeMs": 50},
        "r", 1,
    )  # fmt: skip
    assert (sentinel.interval, sentinel.behavior, sentinel.max_wait) == (0.5, "queue", 0.05)


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"resource": "/x"}, "rules[0].threshold"),
        ({"resource": "/x", "threshold": 0}, "rules[0].threshold"),
        ({"resource": "x", "threshold": 1}, "rules[0].resource"),
        ({"threshold": 1}, "rules[0]: give at least one"),
        ({"resource": "/x", "threshold": 1, "behavior": "drop"}, "rules[0].behavior"),
        ({"resource": "/x", "threshold": 1, "interval": "soon"}, "rules[0].interval"),
        ({"resource": "/x", "threshold": 1, "per": ["user"]}, "rules[0].per"),
        ({"resource": "/x", "threshold": 1, "status": 200}, "rules[0].status"),
        ({"resource": "/x", "threshold": 1, "limit": 3}, "rules[0].limit: unknown field"),
        ({"target": {"method": "x"}, "threshold": 1}, "rules[0].target"),
        ({"resource": "/x", "threshold": 1, "shared": True}, "rate_limits.redisHost"),
    ],
)
def test_bad_rules_name_the_field(rule: dict[str, object], field: str) -> None:
    with pytest.raises(SettingsError, match=field.replace("[", r"\[").replace("]", r"\]")):
        build_rate_limits({"rules": [rule]}, [], {}, "app")


def test_dapr_pipelines_name_loaded_rate_limit_middleware_only() -> None:
    middleware = {
        "rl": ("middleware.http.ratelimit", {"maxRequestsPerSecond": "2.5"}, "rl.yaml"),
        "auth": ("middleware.http.oauth2", {}, "auth.yaml"),
    }
    pipeline = [({"httpPipeline": {"handlers": [{"name": "rl", "type": "middleware.http.ratelimit"}]},
                  "appHttpPipeline": {"handlers": [{"name": "rl"}]}}, "config.yaml")]  # fmt: skip
    limits = build_rate_limits({}, pipeline, middleware, "orders")
    api, app = limits.describe()
    assert (api["name"], api["burst"], api["per"], api["source"]) == ("rl", 2, ["ip", "path"], "rl.yaml")
    assert api["threshold"] / api["intervalSeconds"] == pytest.approx(2.5)
    assert app["name"] == "rl (app)" and app["target"] == "orders/*"
    for handlers, message in [
        ([{"name": "missing"}], "no middleware component named 'missing'"),
        ([{"name": "auth", "type": "middleware.http.oauth2"}], "middleware.http.oauth2 is not supported"),
        ([{"name": "rl", "type": "middleware.http.bearer"}], "is a middleware.http.ratelimit, not a"),
    ]:
        with pytest.raises(SettingsError, match=message):
            build_rate_limits({}, [({"httpPipeline": {"handlers": handlers}}, "c")], middleware, "orders")


async def test_a_redis_bucket_is_one_bucket_for_every_client(redis_server: RedisServer) -> None:
    from redis.asyncio import Redis

    name = f"test-{uuid.uuid4().hex[:8]}"
    first, second = Redis(host=redis_server.host, port=redis_server.port), Redis(port=redis_server.port)
    try:
        a = RedisBuckets(first, name, rate=10.0, burst=3, max_wait=0.0)
        b = RedisBuckets(second, name, rate=10.0, burst=3, max_wait=0.0)
        verdicts = await asyncio.gather(*(bucket.take("k") for bucket in (a, b, a, b, a)))
        assert sorted(v.granted for v in verdicts) == [False, False, True, True, True]
        refused = [v for v in verdicts if not v.granted]
        assert all(0 < v.wait <= 0.1 for v in refused)
        await asyncio.sleep(0.12)
        assert (await b.take("k")).granted
        queued = RedisBuckets(first, name + "-q", rate=10.0, burst=1, max_wait=0.15)
        waits = [await queued.take("k") for _ in range(3)]
        assert [v.granted for v in waits] == [True, True, False]
        assert waits[1].wait == pytest.approx(0.1, abs=0.02)
        assert await first.pttl(f"l8||rl||{name}||k") > 0  # buckets expire once full again
    finally:
        await first.aclose()
        await second.aclose()


def scope_of(path: str) -> dict[str, object]:
    return {"type": "http", "path": path, "method": "GET", "headers": [], "client": ("10.0.0.1", 5000)}


async def test_a_request_one_rule_refuses_costs_the_other_rules_nothing() -> None:
    limits = build_rate_limits(
        {"rules": [{"name": "a", "resource": "/x/*", "threshold": 2, "interval": "60s"},
                   {"name": "b", "resource": "/x/y", "threshold": 1, "interval": "60s"}]},
        [], {}, "app",
    )  # fmt: skip
    assert await limits.check(scope_of("/x/y")) is None
    refused = await limits.check(scope_of("/x/y"))
    assert refused is not None and refused.rule.name == "b"
    assert await limits.check(scope_of("/x/z")) is None  # a's second token was given back
    counted = {rule["name"]: rule for rule in limits.describe()}
    assert (counted["a"]["allowed"], counted["b"]["rejected"]) == (2, 1)


async def test_a_shared_rule_whose_redis_is_gone_lets_requests_through_at_once() -> None:
    with RedisServer() as server:
        limits = build_rate_limits(
            {"redisHost": server.address, "rules": [{"name": f"gone-{uuid.uuid4().hex[:6]}", "resource": "/x",
                                                     "threshold": 1, "shared": True}]},
            [], {}, "app",
        )  # fmt: skip
        await limits.start()
        server.stop()
        try:
            began = time.monotonic()
            assert await limits.check(scope_of("/x")) is None
            assert await limits.check(scope_of("/x")) is None
            assert time.monotonic() - began < 0.5
            rule = limits.describe()[0]
            assert rule["storeErrors"] == 2 and rule["queued"] == 0
        finally:
            await limits.aclose()


def test_a_forwarded_caller_counts_only_when_vouched_for() -> None:
    from mesh.ratelimit.limiter import _caller

    forwarded = [(b"l8-forwarded-by", b"front"), (b"dapr-caller-app-id", b"front")]
    assert _caller(forwarded, "back") == "front"
    assert _caller(forwarded, "back", vouched=False) == "back"  # a mesh token was wanted, not sent
    assert _caller([(b"dapr-caller-app-id", b"front")], "back") == "back"  # not from a sidecar
