"""The ``Resiliency`` resource: Dapr's documents parsed, merged, and turned into a policy per target.

A ``Resiliency`` document (``apiVersion: dapr.io/v1alpha1``, top-level ``scopes``) names policies
under ``spec.policies`` and assigns them under ``spec.targets`` (``components.<name>.inbound`` /
``outbound``, ``apps.<id>``, ``actors.<type>``). Every document in scope is merged into one
:class:`Resiliency`, as daprd does; a later definition of a policy name replaces an earlier one.
Dapr's default policies apply to targets without an entry of their own: for a pub/sub
component's inbound direction ``DefaultPubsubComponentInbound{Retry,Timeout,CircuitBreaker}Policy``,
then ``DefaultComponentInbound...``, ``DefaultComponent...``, ``Default...``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from components.errors import (
    FileError,
    InvalidConfigurationRequestError,
    NotFoundError,
    StateError,
)
from components.resources import ResourceError
from mesh.resiliency.breaker import CircuitBreaker, CircuitBreakerSpec, compile_trip
from mesh.resiliency.durations import parse_duration
from mesh.resiliency.outbound import Outbound, outbound
from mesh.resiliency.policy import Policy
from mesh.resiliency.retry import (
    RETRY_FIELDS,
    RetryPolicy,
    parse_status_ranges,
    retry_from_metadata,
    retry_value,
)
from observability.metrics import Metrics

log = structlog.get_logger(__name__)

RESILIENCY_API_VERSION = "dapr.io/v1alpha1"


@dataclass(slots=True, frozen=True)
class PolicyNames:
    timeout: str = ""
    retry: str = ""
    circuit_breaker: str = ""


_CACHED_APP_POLICIES = 1024
_COMPONENT_TYPES = {
    "pubsub": "Pubsub",
    "state": "Statestore",
    "bindings": "Binding",
    "secretstores": "Secretstore",
}


@dataclass(slots=True)
class Resiliency:
    timeouts: dict[str, float] = field(default_factory=dict)
    retries: dict[str, RetryPolicy] = field(default_factory=dict)
    circuit_breakers: dict[str, CircuitBreakerSpec] = field(default_factory=dict)
    components: dict[str, dict[str, PolicyNames]] = field(default_factory=dict)
    """component name -> {"inbound"|"outbound": names}"""
    apps: dict[str, PolicyNames] = field(default_factory=dict)
    actors: dict[str, dict[str, Any]] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    """The names of the documents loaded, for logs."""
    _breakers: dict[tuple[str, str], tuple[CircuitBreakerSpec, CircuitBreaker]] = field(
        default_factory=dict, repr=False
    )
    _app_policies: dict[str, Policy] = field(default_factory=dict, repr=False)
    """app id -> its invocation policy, made at its first call (the documents do not change)"""
    _origins: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)
    """target field -> (file, document name), for errors found after merging"""
    metrics: Metrics | None = field(default=None, repr=False)
    """Set by the runtime when metrics are on: policies made from then on record Dapr's
    resiliency metrics."""

    @classmethod
    def from_resources(cls, others: Iterable[tuple[str, dict[str, Any], str]], app_id: str) -> Resiliency:
        """Every ``Resiliency`` document of ``Resources.others`` in scope for ``app_id``, merged.
        Raises :class:`ResourceError` naming file, document and field for an invalid one."""
        resiliency = cls()
        for kind, document, source in others:
            if kind == "Resiliency":
                resiliency._add(document, source, app_id)
        resiliency._check_targets()
        if resiliency.names:
            log.info("resiliency loaded", resiliencies=resiliency.names)
        return resiliency

    def component_inbound(
        self, component: str, metadata: Mapping[str, str] | None = None, component_type: str = "pubsub"
    ) -> Policy:
        """The policy for calls from ``component`` into the app (pub/sub delivery). A Resiliency
        retry wins over the component's ``backOff*`` metadata (MetadataError if malformed)."""
        return self._component_policy(component, "inbound", metadata, component_type)

    def component_outbound(self, component: str, component_type: str = "pubsub") -> Policy:
        """The policy for calls from the sidecar to ``component`` (kept for the outbound paths)."""
        return self._component_policy(component, "outbound", None, component_type)

    def component_calls(self, component: str, component_type: str, deadline: float | None) -> Outbound:
        """What the services run ``component``'s calls through: its outbound policy (a target's
        or Dapr's defaults for its type), with ``deadline`` where the policy sets no timeout. A
        store's refusal (an ETag mismatch, a bad key) is its answer: never retried, never counted
        by the breaker."""
        policy = self.component_outbound(component, component_type)
        policy.answers = (StateError, InvalidConfigurationRequestError, NotFoundError, FileError)
        return outbound(component, policy, deadline)

    def app(self, app_id: str) -> Policy:
        """The policy for service invocation of ``app_id`` (``targets.apps``, else Dapr's
        ``DefaultApp*Policy`` and ``Default*Policy`` names)."""
        policy = self._app_policies.get(app_id)
        if policy is None:
            names = self.apps.get(app_id)
            if names is None:
                names = self._defaults(["App", ""])
            policy = self._policy(f"app[{app_id}]", ("app", app_id), names)
            self._observe(policy, f"spec.targets.apps.{app_id}", "outbound", f"app_{app_id}")
            if len(self._app_policies) >= _CACHED_APP_POLICIES:
                self._app_policies.clear()  # app ids come from requests: the cache stays bounded
            self._app_policies[app_id] = policy
        return policy

    def _component_policy(
        self, component: str, direction: str, metadata: Mapping[str, str] | None, component_type: str
    ) -> Policy:
        names = self.components.get(component, {}).get(direction)
        if names is None:
            names = self._default_names(component_type, direction)
        policy = self._policy(f"component[{component}] {direction}", (component, direction), names)
        where = f"spec.targets.components.{component}"
        self._observe(policy, where, direction, f"{component_type.lower()}_{component}")
        if not names.retry and direction == "inbound" and metadata:
            policy.retry = retry_from_metadata(metadata)
        return policy

    def _policy(self, label: str, key: tuple[str, str], names: PolicyNames) -> Policy:
        """A policy of the named parts; a target's circuit breaker is one object across calls."""
        policy = Policy(label)
        if names.timeout:
            policy.timeout = self.timeouts[names.timeout] or None
        if names.retry:
            policy.retry = self.retries[names.retry]
        if names.circuit_breaker:
            spec = self.circuit_breakers[names.circuit_breaker]
            cached = self._breakers.get(key)
            if cached is None or cached[0] != spec:
                breaker = CircuitBreaker(replace(spec, name=f"{spec.name}-{key[0]}-{key[1]}"))
                cached = self._breakers[key] = (spec, breaker)
            policy.breaker = cached[1]
        return policy

    def _observe(self, policy: Policy, where: str, direction: str, target: str) -> None:
        """Dapr's resiliency metrics for ``policy``, named after the document that set it (a
        target's own, else the first loaded: Dapr's default policies)."""
        if self.metrics is None or not (policy.timeout or policy.retry or policy.breaker):
            return
        origin = self._origins.get(where)
        name = origin[1] if origin else (self.names[0] if self.names else "")
        policy.metrics = self.metrics.resiliency_policy(name, direction, target)

    def _default_names(self, component_type: str, direction: str) -> PolicyNames:
        kind = _COMPONENT_TYPES.get(component_type.lower(), component_type.capitalize())
        level = direction.capitalize()
        return self._defaults([f"{kind}Component{level}", f"Component{level}", "Component", ""])

    def _defaults(self, levels: list[str]) -> PolicyNames:
        """Dapr's default policy names, most specific level first (``Default<level>RetryPolicy``)."""

        def first(template: str, defined: Mapping[str, Any]) -> str:
            return next((template % level for level in levels if template % level in defined), "")

        return PolicyNames(
            timeout=first("Default%sTimeoutPolicy", self.timeouts),
            retry=first("Default%sRetryPolicy", self.retries),
            circuit_breaker=first("Default%sCircuitBreakerPolicy", self.circuit_breakers),
        )

    # -- parsing -----------------------------------------------------------------------------------

    def _add(self, document: dict[str, Any], source: str, app_id: str) -> None:
        metadata = document.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if not isinstance(name, str) or not name:
            raise ResourceError(source, "Resiliency has no metadata.name", field="metadata.name")

        def fail(message: str, where: str) -> ResourceError:
            return ResourceError(source, f"{message} (Resiliency {name!r})", field=where)

        if document.get("apiVersion") != RESILIENCY_API_VERSION:
            raise fail(f"apiVersion must be {RESILIENCY_API_VERSION}", "apiVersion")
        scopes = document.get("scopes") or []
        if not isinstance(scopes, list):
            raise fail("scopes must be a list of app ids", "scopes")
        if scopes and app_id not in [str(s) for s in scopes]:
            log.info("resiliency not in scope for this app", resiliency=name, app_id=app_id, file=source)
            return
        spec = _mapping(document.get("spec"), "spec", fail)
        policies = _mapping(spec.get("policies"), "spec.policies", fail)
        for policy, value in _mapping(policies.get("timeouts"), "spec.policies.timeouts", fail).items():
            where = f"spec.policies.timeouts.{policy}"
            try:
                seconds = parse_duration(value)
            except ValueError as exc:
                raise fail(str(exc), where) from None
            if seconds < 0:
                raise fail(f"{value!r} must not be negative", where)
            self.timeouts[str(policy)] = seconds
        for policy, value in _mapping(policies.get("retries"), "spec.policies.retries", fail).items():
            self.retries[str(policy)] = _parse_retry(value, f"spec.policies.retries.{policy}", fail)
        breakers = _mapping(policies.get("circuitBreakers"), "spec.policies.circuitBreakers", fail)
        for policy, value in breakers.items():
            where = f"spec.policies.circuitBreakers.{policy}"
            self.circuit_breakers[str(policy)] = _parse_breaker(str(policy), value, where, fail)
        targets = _mapping(spec.get("targets"), "spec.targets", fail)
        for component, value in _mapping(targets.get("components"), "spec.targets.components", fail).items():
            where = f"spec.targets.components.{component}"
            entry = _mapping(value, where, fail)
            self._origins[where] = (source, name)
            self.components[str(component)] = {
                direction: _parse_names(entry.get(direction), f"{where}.{direction}", fail)
                for direction in ("inbound", "outbound")
            }
        for app, value in _mapping(targets.get("apps"), "spec.targets.apps", fail).items():
            self._origins[f"spec.targets.apps.{app}"] = (source, name)
            self.apps[str(app)] = _parse_names(value, f"spec.targets.apps.{app}", fail)
        for actor, value in _mapping(targets.get("actors"), "spec.targets.actors", fail).items():
            self.actors[str(actor)] = dict(_mapping(value, f"spec.targets.actors.{actor}", fail))
        self.names.append(name)

    def _check_targets(self) -> None:
        """A target naming a policy no document defines fails start-up (daprd silently ignores it,
        which hides typos)."""
        named: list[tuple[str, str, PolicyNames]] = [
            (f"spec.targets.components.{c}", f".{d}", n)
            for c, ds in self.components.items()
            for d, n in ds.items()
        ]
        named += [(f"spec.targets.apps.{a}", "", n) for a, n in self.apps.items()]
        for target, suffix, names in named:
            source, name = self._origins[target]
            for kind, value, defined in (
                ("timeout", names.timeout, self.timeouts),
                ("retry", names.retry, self.retries),
                ("circuitBreaker", names.circuit_breaker, self.circuit_breakers),
            ):
                if value and value not in defined:
                    raise ResourceError(
                        source,
                        f"names undefined {kind} policy {value!r} (Resiliency {name!r})",
                        field=f"{target}{suffix}.{kind}",
                    )


Fail = Callable[[str, str], ResourceError]


def _mapping(value: Any, where: str, fail: Fail) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail("must be a mapping", where)
    return value


def _parse_retry(value: Any, where: str, fail: Fail) -> RetryPolicy:
    settings = _mapping(value, where, fail)
    values: dict[str, Any] = {}
    for key, raw in settings.items():
        if key == "matching":
            matching = _mapping(raw, f"{where}.matching", fail)
            codes = matching.get("httpStatusCodes")
            if codes is not None:
                try:
                    values["http_status_codes"] = parse_status_ranges(str(codes))
                except ValueError as exc:
                    raise fail(str(exc), f"{where}.matching.httpStatusCodes") from None
            continue
        attribute = RETRY_FIELDS.get(str(key).lower())
        if attribute is None:
            raise fail(f"unknown retry field {key!r}", f"{where}.{key}")
        try:
            values[attribute] = retry_value(attribute, raw)
        except ValueError as exc:
            raise fail(str(exc), f"{where}.{key}") from None
    return RetryPolicy(**values)


def _parse_breaker(name: str, value: Any, where: str, fail: Fail) -> CircuitBreakerSpec:
    settings = _mapping(value, where, fail)
    values: dict[str, Any] = {}
    for key, raw in settings.items():
        lowered = str(key).lower()
        try:
            if lowered == "maxrequests":
                if isinstance(raw, bool) or not str(raw).strip().isdigit():
                    raise ValueError(f"{raw!r} is not a non-negative integer")
                values["max_requests"] = int(str(raw).strip())
            elif lowered in ("interval", "timeout"):
                seconds = parse_duration(raw)
                if seconds < 0:
                    raise ValueError(f"{raw!r} must not be negative")
                values[lowered] = seconds
            elif lowered == "trip":
                values["trip"] = str(raw)
                compile_trip(str(raw))
            else:
                raise ValueError(f"unknown circuit breaker field {key!r}")
        except ValueError as exc:
            raise fail(str(exc), f"{where}.{key}") from None
        except Exception as exc:  # celpy's parse errors carry the expression with a caret
            raise fail(f"invalid CEL expression {raw!r}: {type(exc).__name__}", f"{where}.{key}") from None
    return CircuitBreakerSpec(name=name, **values)


def _parse_names(value: Any, where: str, fail: Fail) -> PolicyNames:
    entry = _mapping(value, where, fail)
    for key in entry:
        if key not in ("timeout", "retry", "circuitBreaker"):
            raise fail(f"unknown field {key!r} (timeout, retry, circuitBreaker)", f"{where}.{key}")
    return PolicyNames(
        timeout=str(entry.get("timeout") or ""),
        retry=str(entry.get("retry") or ""),
        circuit_breaker=str(entry.get("circuitBreaker") or ""),
    )
