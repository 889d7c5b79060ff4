"""Rate-limit rules: what a rule matches and how much it lets through.

Rules come from the l8 settings file (``rate_limits``, Layotto flow-control style; Sentinel's field
names are accepted too) and from Dapr's ``middleware.http.ratelimit`` components named in a
``Configuration``'s ``httpPipeline`` (mesh/ratelimit/dapr_middleware.py). A request is limited by
every rule it matches; a rule matches when all of its selectors do:

- ``resource``: a glob over the request path (``*`` matches anything, ``/`` included), e.g.
  ``/v1.0/state/*``; ``methods`` narrows it to HTTP verbs;
- ``target``: ``{app, method}`` of a service invocation (``/v1.0/invoke/<app>/method/<method>`` or
  the ``dapr-app-id`` header), ``method`` a glob, default any;
- ``caller``: the calling app id: the ``dapr-caller-app-id`` another l8 forwarded, else this
  sidecar's own app (its app is the caller of what it sends here).

Each rule is a token bucket: ``threshold`` requests per ``interval`` sustained, bursts of up to
``burst`` (default ``threshold``). ``behavior: reject`` answers at once when no token is left;
``behavior: queue`` holds the request until its token comes, if that is within
``maxQueueingTime``, else rejects it. ``per`` splits the bucket by ``ip``, ``caller`` and/or
``path``; ``shared: true`` keeps the bucket in Redis so every sidecar draws on the same one.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import field_validator, model_validator

from components.metadata import is_truthy, parse_duration
from mesh.settings import SettingsModel, settings_error

BEHAVIORS = {"reject": "reject", "queue": "queue", "0": "reject", "1": "queue", "throttle": "queue"}
PER_KEYS = ("ip", "caller", "path")


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    threshold: int
    interval: float
    """Seconds."""
    burst: int
    behavior: str
    max_wait: float
    """Seconds a queued request may wait for its token."""
    resource: re.Pattern[str] | None = None
    resource_text: str | None = None
    methods: frozenset[str] = frozenset()
    target_app: str | None = None
    target_method: re.Pattern[str] | None = None
    target_text: str | None = None
    caller: str | None = None
    per: tuple[str, ...] = ()
    shared: bool = False
    status: int = 429
    source: str = "settings"

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return self.threshold / self.interval

    def matches(self, method: str, path: str, target: tuple[str, str] | None, caller: str) -> bool:
        if self.methods and method not in self.methods:
            return False
        if self.resource is not None and not self.resource.fullmatch(path):
            return False
        if self.target_app is not None:
            if target is None or target[0] != self.target_app:
                return False
            if self.target_method is not None and not self.target_method.fullmatch(target[1]):
                return False
        return self.caller is None or caller == self.caller

    def describe(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "name": self.name,
            "threshold": self.threshold,
            "intervalSeconds": self.interval,
            "burst": self.burst,
            "behavior": self.behavior,
            "shared": self.shared,
            "source": self.source,
        }
        if self.behavior == "queue":
            found["maxQueueingSeconds"] = self.max_wait
        for key, value in (("resource", self.resource_text), ("target", self.target_text),
                           ("caller", self.caller)):  # fmt: skip
            if value is not None:
                found[key] = value
        if self.methods:
            found["methods"] = sorted(self.methods)
        if self.per:
            found["per"] = list(self.per)
        return found


def glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


def _seconds(value: Any, *, milliseconds: bool = False) -> float:
    """Seconds from ``1s``, ``500ms``, ``2m``, a number (seconds, or milliseconds for the
    Sentinel ``...Ms`` fields)."""
    try:
        if milliseconds and str(value).strip().replace(".", "", 1).isdigit():
            return float(value) / 1000
        return parse_duration(value).total_seconds()
    except ValueError:
        raise settings_error(f"{value!r} is not a duration (e.g. 1s, 500ms)") from None


class RuleSettings(SettingsModel):
    """One rule as the settings file gives it (Sentinel's field names accepted too)."""

    name: str | None = None
    resource: str | None = None
    methods: list[str] = []
    target: dict[str, str] | None = None
    """``{app, method}``; a bare app id means every method."""
    caller: str | None = None
    threshold: int
    interval: float = 1.0
    statIntervalInMs: float | None = None
    burst: int | None = None
    behavior: str | None = None
    controlBehavior: str | None = None
    maxQueueingTime: float = 0.5
    maxQueueingTimeMs: float | None = None
    per: list[str] = []
    shared: bool = False
    status: int = 429

    @field_validator("threshold", "burst", mode="before")
    @classmethod
    def _positive(cls, value: Any) -> int | None:
        if value is None:
            return None
        try:
            number = int(str(value))
        except ValueError:
            number = 0
        if number < 1:
            raise settings_error("a whole number above zero")
        return number

    @field_validator("interval", "maxQueueingTime", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return _seconds(value)

    @field_validator("statIntervalInMs", "maxQueueingTimeMs", mode="before")
    @classmethod
    def _milliseconds(cls, value: Any) -> float | None:
        return None if value is None else _seconds(value, milliseconds=True)

    @field_validator("behavior", "controlBehavior", mode="before")
    @classmethod
    def _behavior(cls, value: Any) -> str | None:
        if value is None:
            return None
        behavior = BEHAVIORS.get(str(value).lower())
        if behavior is None:
            raise settings_error(f"{str(value).lower()!r} is not reject or queue")
        return behavior

    @field_validator("resource", mode="before")
    @classmethod
    def _resource(cls, value: Any) -> Any:
        if value is not None and (not isinstance(value, str) or not value.startswith("/")):
            raise settings_error("a path pattern starting with / (e.g. /v1.0/state/*)")
        return value

    @field_validator("methods", mode="before")
    @classmethod
    def _methods(cls, value: Any) -> list[str]:
        methods = [value] if isinstance(value, str) else value or []
        if not isinstance(methods, list):
            raise settings_error("a list of HTTP verbs")
        return [str(method).upper() for method in methods]

    @field_validator("target", mode="before")
    @classmethod
    def _target(cls, value: Any) -> dict[str, str] | None:
        if value is None:
            return None
        target = {"app": value} if isinstance(value, str) else value
        if not isinstance(target, Mapping) or not target.get("app"):
            raise settings_error("give {app: <app-id>, method: <pattern>}")
        return {"app": str(target["app"]), "method": str(target.get("method", "*")).lstrip("/")}

    @field_validator("caller", mode="before")
    @classmethod
    def _caller(cls, value: Any) -> str | None:
        return None if value is None else str(value)

    @field_validator("per", mode="before")
    @classmethod
    def _per(cls, value: Any) -> list[str]:
        per = [value] if isinstance(value, str) else value or []
        if not isinstance(per, list) or any(key not in PER_KEYS for key in per):
            raise settings_error(f"a list of {', '.join(PER_KEYS)}")
        return per

    @field_validator("shared", mode="before")
    @classmethod
    def _shared(cls, value: Any) -> bool:
        return is_truthy(value)

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not 400 <= value <= 599:
            raise settings_error("an HTTP error status (400-599)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RuleSettings:
        if (self.statIntervalInMs if self.statIntervalInMs is not None else self.interval) <= 0:
            raise settings_error("must be above zero", "interval")
        if (self.maxQueueingTimeMs if self.maxQueueingTimeMs is not None else self.maxQueueingTime) < 0:
            raise settings_error("must not be negative", "maxQueueingTime")
        if self.resource is None and self.target is None and self.caller is None:
            raise settings_error("give at least one of resource, target or caller")
        return self

    def rule(self, index: int) -> Rule:
        """The rule these settings describe, ``rule-<index>`` when it has no name."""
        behavior = self.behavior or self.controlBehavior or "reject"
        max_wait = self.maxQueueingTimeMs if self.maxQueueingTimeMs is not None else self.maxQueueingTime
        target_app = target_method = target_text = None
        if self.target is not None:
            target_app, method = self.target["app"], self.target["method"]
            target_method = None if method == "*" else glob(method)
            target_text = f"{target_app}/{method}"
        return Rule(
            name=self.name or f"rule-{index}",
            threshold=self.threshold,
            interval=self.statIntervalInMs if self.statIntervalInMs is not None else self.interval,
            burst=self.burst or self.threshold,
            behavior=behavior,
            max_wait=max_wait if behavior == "queue" else 0.0,
            resource=glob(self.resource) if self.resource else None,
            resource_text=self.resource,
            methods=frozenset(self.methods),
            target_app=target_app,
            target_method=target_method,
            target_text=target_text,
            caller=self.caller,
            per=tuple(self.per),
            shared=self.shared,
            status=self.status,
        )
