"""Rate limiting: rules (rules.py) from the settings file and from Dapr's rate-limit middleware
(dapr_middleware.py), token buckets in process or in Redis (buckets.py), and the limiter in the
request path (limiter.py).

.. code-block:: yaml

    rate_limits:
      redisHost: 127.0.0.1:6379        # where shared rules keep their buckets
      rules:
        - name: state-writes
          resource: /v1.0/state/*
          methods: [POST, DELETE]
          threshold: 100               # per interval
          interval: 1s
        - name: checkout
          target: {app: orders, method: "checkout*"}
          threshold: 20
          behavior: queue              # wait up to maxQueueingTime for a token
          maxQueueingTime: 500ms
          shared: true                 # one bucket for every sidecar
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mesh.errors import SettingsError
from mesh.ratelimit.dapr_middleware import RATELIMIT, pipeline_rules
from mesh.ratelimit.limiter import RateLimits
from mesh.ratelimit.rules import Rule, parse_rule

__all__ = ["RATELIMIT", "RateLimits", "Rule", "build_rate_limits"]

_TOP_FIELDS = {"rules", "redisHost", "redisPassword", "redisDB", "onRedisError"}


def build_rate_limits(
    settings: Mapping[str, Any],
    configurations: Iterable[tuple[Mapping[str, Any], str]],
    middleware: Mapping[str, tuple[str, Mapping[str, str], str]],
    app_id: str,
) -> RateLimits:
    """The limiter of the ``rate_limits`` settings and the Dapr pipelines' rate-limit handlers."""
    if not isinstance(settings, Mapping):
        raise SettingsError("rate_limits: a mapping with rules (and redisHost for shared rules)")
    unknown = sorted(set(map(str, settings)) - _TOP_FIELDS)
    if unknown:
        raise SettingsError(
            f"rate_limits.{unknown[0]}: unknown field (known: {', '.join(sorted(_TOP_FIELDS))})"
        )
    raw_rules = settings.get("rules") or []
    if not isinstance(raw_rules, list):
        raise SettingsError("rate_limits.rules: a list of rules")
    rules = [parse_rule(raw, f"rate_limits.rules[{i}]", i) for i, raw in enumerate(raw_rules)]
    rules += pipeline_rules(configurations, middleware, app_id)
    on_error = str(settings.get("onRedisError", "allow")).lower()
    if on_error not in ("allow", "reject"):
        raise SettingsError("rate_limits.onRedisError: allow or reject")
    return RateLimits(rules, app_id, settings)
