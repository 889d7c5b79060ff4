"""Rate limiting: rules (rules.py) from the settings file and from Dapr's rate-limit middleware
(dapr_middleware.py), token buckets in process or in Redis (buckets.py), and the limiter in the
request path (limiter.py).

.. code-block:: yaml

    rate_limits:
      redisHost: 127.0.0.1:6379        # where shared rules keep their buckets (with redisUsername,
                                       # redisPassword, redisDB, enableTLS... as Dapr's Redis components)
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

from mesh.ratelimit.dapr_middleware import RATELIMIT, pipeline_rules
from mesh.ratelimit.limiter import RateLimits
from mesh.ratelimit.rules import Rule
from mesh.ratelimit.settings import RateLimitSettings, parse_rate_limits

__all__ = ["RATELIMIT", "RateLimitSettings", "RateLimits", "Rule", "build_rate_limits", "parse_rate_limits"]


def build_rate_limits(
    settings: RateLimitSettings,
    configurations: Iterable[tuple[Mapping[str, Any], str]],
    middleware: Mapping[str, tuple[str, Mapping[str, str], str]],
    app_id: str,
) -> RateLimits:
    """The limiter of the ``rate_limits`` settings and the Dapr pipelines' rate-limit handlers."""
    rules = [rule.rule(i) for i, rule in enumerate(settings.rules)]
    rules += pipeline_rules(configurations, middleware, app_id)
    return RateLimits(rules, app_id, settings.redis, fail_open=settings.onRedisError == "allow")
