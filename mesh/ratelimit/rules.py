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

from components.metadata import parse_duration
from mesh.errors import SettingsError

BEHAVIORS = {"reject": "reject", "queue": "queue", "0": "reject", "1": "queue", "throttle": "queue"}
PER_KEYS = ("ip", "caller", "path")
_RULE_FIELDS = {
    "name", "resource", "methods", "target", "caller", "threshold", "interval", "statIntervalInMs",
    "burst", "behavior", "controlBehavior", "maxQueueingTime", "maxQueueingTimeMs", "per", "shared",
    "status",
}  # fmt: skip


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


def duration(value: Any, where: str, *, milliseconds: bool = False) -> float:
    """Seconds from ``1s``, ``500ms``, ``2m``, a number (seconds, or milliseconds for the
    Sentinel ``...Ms`` fields)."""
    try:
        if milliseconds and str(value).strip().replace(".", "", 1).isdigit():
            return float(value) / 1000
        return parse_duration(value).total_seconds()
    except ValueError:
        raise SettingsError(f"{where}: {value!r} is not a duration (e.g. 1s, 500ms)") from None


def parse_rule(raw: Any, where: str, index: int) -> Rule:
    if not isinstance(raw, Mapping):
        raise SettingsError(f"{where}: a rule is a mapping")
    unknown = sorted(set(map(str, raw)) - _RULE_FIELDS)
    if unknown:
        raise SettingsError(f"{where}.{unknown[0]}: unknown field (known: {', '.join(sorted(_RULE_FIELDS))})")
    threshold = _positive_int(raw.get("threshold"), f"{where}.threshold")
    if "statIntervalInMs" in raw:
        interval = duration(raw["statIntervalInMs"], f"{where}.statIntervalInMs", milliseconds=True)
    else:
        interval = duration(raw.get("interval", "1s"), f"{where}.interval")
    if interval <= 0:
        raise SettingsError(f"{where}.interval: must be above zero")
    burst = _positive_int(raw.get("burst", threshold), f"{where}.burst")
    behavior_raw = str(raw.get("behavior", raw.get("controlBehavior", "reject"))).lower()
    behavior = BEHAVIORS.get(behavior_raw)
    if behavior is None:
        raise SettingsError(f"{where}.behavior: {behavior_raw!r} is not reject or queue")
    if "maxQueueingTimeMs" in raw:
        max_wait = duration(raw["maxQueueingTimeMs"], f"{where}.maxQueueingTimeMs", milliseconds=True)
    else:
        max_wait = duration(raw.get("maxQueueingTime", "500ms"), f"{where}.maxQueueingTime")
    if max_wait < 0:
        raise SettingsError(f"{where}.maxQueueingTime: must not be negative")
    resource = raw.get("resource")
    if resource is not None and (not isinstance(resource, str) or not resource.startswith("/")):
        raise SettingsError(f"{where}.resource: a path pattern starting with / (e.g. /v1.0/state/*)")
    methods = raw.get("methods") or []
    if isinstance(methods, str):
        methods = [methods]
    if not isinstance(methods, list):
        raise SettingsError(f"{where}.methods: a list of HTTP verbs")
    target = raw.get("target")
    target_app = target_method = target_text = None
    if target is not None:
        if isinstance(target, str):
            target = {"app": target}
        if not isinstance(target, Mapping) or not target.get("app"):
            raise SettingsError(f"{where}.target: give {{app: <app-id>, method: <pattern>}}")
        target_app = str(target["app"])
        method = str(target.get("method", "*")).lstrip("/")
        target_method = None if method == "*" else glob(method)
        target_text = f"{target_app}/{method}"
    per = raw.get("per") or []
    per = [per] if isinstance(per, str) else per
    if not isinstance(per, list) or any(key not in PER_KEYS for key in per):
        raise SettingsError(f"{where}.per: a list of {', '.join(PER_KEYS)}")
    status = raw.get("status", 429)
    if not isinstance(status, int) or not 400 <= status <= 599:
        raise SettingsError(f"{where}.status: an HTTP error status (400-599)")
    if resource is None and target is None and raw.get("caller") is None:
        raise SettingsError(f"{where}: give at least one of resource, target or caller")
    return Rule(
        name=str(raw.get("name") or f"rule-{index}"),
        threshold=threshold,
        interval=interval,
        burst=burst,
        behavior=behavior,
        max_wait=max_wait if behavior == "queue" else 0.0,
        resource=glob(resource) if resource else None,
        resource_text=resource,
        methods=frozenset(str(m).upper() for m in methods),
        target_app=target_app,
        target_method=target_method,
        target_text=target_text,
        caller=str(raw["caller"]) if raw.get("caller") is not None else None,
        per=tuple(per),
        shared=bool(raw.get("shared", False)),
        status=status,
    )


def _positive_int(value: Any, where: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if number < 1:
        raise SettingsError(f"{where}: a whole number above zero")
    return number
