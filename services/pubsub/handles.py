"""A loaded pub/sub component as the runtime uses it: the instance, its declared features and the
topic scopes from its metadata."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from components.pubsub.base import Feature, PubSub
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
