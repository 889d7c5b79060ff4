"""Dapr's rate-limit middleware, as daprd applies it: a ``middleware.http.ratelimit`` component
(``maxRequestsPerSecond``) named by a ``Configuration``'s ``spec.httpPipeline.handlers`` limits the
requests this sidecar serves, per remote IP and path, in this sidecar only (as in Dapr). Named in
``spec.appHttpPipeline`` it limits the calls that reach this sidecar's app (service invocation of
its own app id). Bursts are ``maxRequestsPerSecond`` requests (at least one), as Dapr's tollbooth
allows.

``middleware.http.wasm`` handlers are checked here and applied by wasm/http_pipeline.py. Other
middleware types named in a pipeline fail start-up: a pipeline that is silently not applied
(an auth middleware, say) would be worse than none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from components.metadata import lookup
from mesh.errors import SettingsError
from mesh.ratelimit.rules import Rule

RATELIMIT = "middleware.http.ratelimit"
APPLIED_ELSEWHERE = frozenset({"middleware.http.wasm"})
"""Middleware types another part of l8 applies (wasm/http_pipeline.py): named, checked, skipped here."""
_PIPELINES = (("httpPipeline", False), ("appHttpPipeline", True))


def pipeline_rules(
    configurations: Iterable[tuple[Mapping[str, Any], str]],
    middleware: Mapping[str, tuple[str, Mapping[str, str], str]],
    app_id: str,
) -> list[Rule]:
    """Rules for the handlers of ``configurations`` ((Configuration spec, source) pairs), whose
    names refer to ``middleware`` (component name -> (type, metadata, source))."""
    rules: list[Rule] = []
    for spec, source in configurations:
        for pipeline, towards_app in _PIPELINES:
            handlers = (spec.get(pipeline) or {}).get("handlers") or []
            if not isinstance(handlers, list):
                raise SettingsError(f"{source}: spec.{pipeline}.handlers must be a list")
            for index, handler in enumerate(handlers):
                where = f"{source}: spec.{pipeline}.handlers[{index}]"
                if not isinstance(handler, Mapping) or not handler.get("name"):
                    raise SettingsError(f"{where}: a handler needs a name and a type")
                name, kind = str(handler["name"]), str(handler.get("type", ""))
                found = middleware.get(name)
                if found is None:
                    raise SettingsError(f"{where}: no middleware component named {name!r} is loaded")
                if kind and kind != found[0]:
                    raise SettingsError(f"{where}: component {name!r} is a {found[0]}, not a {kind}")
                if found[0] in APPLIED_ELSEWHERE:
                    continue
                if found[0] != RATELIMIT:
                    raise SettingsError(
                        f"{where}: middleware {found[0]} is not supported "
                        f"(l8 has {RATELIMIT} and middleware.http.wasm)"
                    )
                rules.append(_rule(name, found[1], found[2], app_id if towards_app else None))
    return rules


def _rule(name: str, metadata: Mapping[str, str], source: str, target_app: str | None) -> Rule:
    value = lookup(metadata, "maxRequestsPerSecond")
    try:
        rate = float(value) if value is not None else 100.0  # components-contrib's default
    except ValueError:
        rate = 0.0
    if rate <= 0:
        raise SettingsError(f"{source}: component {name!r}: maxRequestsPerSecond must be a number above zero")
    threshold, interval = (int(rate), 1.0) if rate.is_integer() else (1, 1 / rate)
    return Rule(
        name=name if target_app is None else f"{name} (app)",
        threshold=threshold,
        interval=interval,
        burst=max(1, int(rate)),
        behavior="reject",
        max_wait=0.0,
        target_app=target_app,
        target_text=f"{target_app}/*" if target_app else None,
        per=("ip", "path"),
        source=source,
    )
