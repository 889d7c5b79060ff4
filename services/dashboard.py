"""The dashboard's one answer (``GET /v1.0-alpha1/l8/dashboard``): what a person watching the
sidecar wants on one page, put together from what the other services already keep.

- the app (id, versions, start time, uptime) and the runtime's health, from the actuator;
- every component with its type, capabilities (the metadata API's) and health (the actuator's
  indicators: pinged at most once a second, however many pages poll);
- subscriptions with their routes, rate-limit rules with their counters, wasm functions with
  theirs, and the actor runtime (its status, placement and active actors), from the metadata API's answer;
- the traffic per building block (observability/traffic.py), sampled from the Prometheus
  histogram; absent when metrics are off;
- the last error answers (observability/recent_errors.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from observability.recent_errors import RecentErrors
from observability.traffic import TrafficWindow
from services.actuator import ActuatorService, Indication
from services.metadata import MetadataService


@dataclass(slots=True)
class DashboardService:
    metadata: MetadataService
    actuator: ActuatorService
    recent_errors: RecentErrors
    traffic: TrafficWindow | None = None
    """None when metrics are off: the charts have nothing to read."""

    async def describe(self, runtime: Indication) -> dict[str, Any]:
        described = self.metadata.describe()
        info = self.actuator.info()["app"]
        health = await self.actuator.readiness(runtime)
        components = []
        for component in described["components"]:
            indication = health.components.get(component["name"])
            entry = {**component, "health": indication.status.value if indication else "UNKNOWN"}
            reason = indication.details.get("reason") if indication else None
            if reason:
                entry["reason"] = reason
            components.append(entry)
        return {
            "app": {
                "id": described["id"],
                "version": info["version"],
                "daprApiVersion": info["daprApiVersion"],
                "startTime": info["startTime"],
                "uptimeSeconds": info["uptimeSeconds"],
                "status": health.status.value,
            },
            "components": components,
            "subscriptions": [_subscription(s) for s in described.get("subscriptions", ())],
            "rateLimits": [_rule(rule) for rule in described.get("rateLimits", ())],
            "wasmFunctions": described.get("wasmFunctions", []),
            "actors": described["actorRuntime"],
            "traffic": self.traffic.describe() if self.traffic is not None else None,
            "errors": self.recent_errors.describe(),
        }


def _subscription(found: dict[str, Any]) -> dict[str, Any]:
    return {
        "pubsubname": found["pubsubname"],
        "topic": found["topic"],
        "routes": found.get("rules", []),
        "deadLetterTopic": found["deadLetterTopic"],
        "type": found["type"],
    }


def _rule(found: dict[str, Any]) -> dict[str, Any]:
    """The rule's settings, with its ``refused`` count named as the dashboard shows it."""
    return {**found, "refused": found.get("rejected", 0)}
