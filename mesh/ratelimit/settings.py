"""``rate_limits`` in l8's settings file: the rules (rules.py), what to do when the Redis of shared
rules cannot answer, and that Redis, given with Dapr's Redis component fields (``redisHost``,
``redisUsername``, ``redisPassword``, ``redisDB``, ``enableTLS``...)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import field_validator, model_validator

from components.redis_metadata import RedisConnectionMetadata
from mesh.ratelimit.rules import RuleSettings
from mesh.settings import REDIS_FIELDS, SettingsModel, parse_settings, redis_connection, settings_error

REDIS_DEFAULTS = {"dialTimeout": "500ms", "readTimeout": "500ms"}
"""A check waits little for Redis: past this the fallback (``onRedisError``) answers instead."""


class RateLimitSettings(SettingsModel):
    known_extra: ClassVar[frozenset[str]] = REDIS_FIELDS
    derived: ClassVar[frozenset[str]] = frozenset({"redis"})

    rules: tuple[RuleSettings, ...] = ()
    onRedisError: Literal["allow", "reject"] = "allow"
    redis: RedisConnectionMetadata | None = None
    """Where shared rules keep their buckets (from the Redis fields)."""

    @classmethod
    def prepare(cls, data: Mapping[Any, Any]) -> Any:
        found = {key: value for key, value in data.items() if key not in REDIS_FIELDS}
        found["redis"] = redis_connection(data, REDIS_DEFAULTS)
        return found

    @field_validator("rules", mode="before")
    @classmethod
    def _rules(cls, value: Any) -> Any:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise settings_error("a list of rules")
        return value

    @field_validator("onRedisError", mode="before")
    @classmethod
    def _on_error(cls, value: Any) -> str:
        text = str(value).lower()
        if text not in ("allow", "reject"):
            raise settings_error("allow or reject")
        return text

    @model_validator(mode="after")
    def _shared_rules_have_a_redis(self) -> RateLimitSettings:
        if self.redis is None and any(rule.shared for rule in self.rules):
            raise settings_error("shared rules keep their buckets in Redis; give host:port", "redisHost")
        return self


def parse_rate_limits(raw: Any) -> RateLimitSettings:
    return parse_settings(RateLimitSettings, raw, "rate_limits")
