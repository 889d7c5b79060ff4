"""A loaded pub/sub component as the runtime uses it: the instance, its declared features, the
topic scopes from its metadata and its outbound policy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from components.pubsub.base import Feature, PubSub
from mesh.resiliency import NO_POLICY, Outbound
from services.pubsub.scopes import TopicScopes


@dataclass(slots=True, frozen=True)
class PubSubHandle:
    name: str
    instance: PubSub
    features: frozenset[Feature]
    scopes: TopicScopes
    metadata: Mapping[str, str]
    """The component's metadata as given (consumerID filled in), for settings read outside the
    backend such as delivery retries."""
    outbound: Outbound = NO_POLICY
    """Publishes run through it, and are not resent after a lost reply (no duplicate events)."""
