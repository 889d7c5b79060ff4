"""Topic scoping from a pub/sub component's metadata, with Dapr's semantics
(pkg/runtime/pubsub/scopes and ``IsOperationAllowed``):

* ``allowedTopics`` (csv): when set, no app may publish or subscribe to any other topic.
* ``publishingScopes`` / ``subscriptionScopes`` (``app1=t1,t2;app2=t3``): an app listed there may
  use only its listed topics (``app1=`` lists none, so app1 may use none); an app not listed may use
  any topic allowedTopics lets through.
* ``protectedTopics`` (csv): a protected topic is closed to every app whose scope does not list it.

Field names are matched case-insensitively and spaces are removed from values, as Dapr does. An app
listed twice gets the union of its topics. Where Dapr silently skips a malformed scope entry
(``app1`` without ``=``, ``=t1`` without an app, ``app1=t1=t2``), l8 refuses the component at
start-up, naming the field: such an entry is a typo that would otherwise open or close topics
unnoticed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from components.errors import MetadataError

ALLOWED_TOPICS = "allowedTopics"
PROTECTED_TOPICS = "protectedTopics"
PUBLISHING_SCOPES = "publishingScopes"
SUBSCRIPTION_SCOPES = "subscriptionScopes"

_NOTHING: frozenset[str] = frozenset()


@dataclass(slots=True, frozen=True)
class TopicScopes:
    allowed_topics: frozenset[str] = _NOTHING
    """Empty: every topic (subject to the scopes)."""
    protected_topics: frozenset[str] = _NOTHING
    publishing: Mapping[str, frozenset[str]] = field(default_factory=dict, hash=False)
    """App id -> the topics it may publish to; an app not in the map is not scoped."""
    subscribing: Mapping[str, frozenset[str]] = field(default_factory=dict, hash=False)
    """App id -> the topics it may subscribe to; an app not in the map is not scoped."""

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> TopicScopes:
        """Parse the scoping fields (names case-insensitive); raises MetadataError(field) when a
        value is malformed."""
        by_lower = {name.lower(): (name, value) for name, value in metadata.items()}

        def value(name: str) -> tuple[str, str]:
            return by_lower.get(name.lower(), (name, ""))

        return cls(
            allowed_topics=_topics(value(ALLOWED_TOPICS)[1]),
            protected_topics=_topics(value(PROTECTED_TOPICS)[1]),
            publishing=_scopes(*value(PUBLISHING_SCOPES)),
            subscribing=_scopes(*value(SUBSCRIPTION_SCOPES)),
        )

    @property
    def unrestricted(self) -> bool:
        """No scoping at all: every app may use every topic."""
        return not (self.allowed_topics or self.protected_topics or self.publishing or self.subscribing)

    def can_publish(self, app_id: str, topic: str) -> bool:
        return self._allowed(topic, self.publishing.get(app_id))

    def can_subscribe(self, app_id: str, topic: str) -> bool:
        return self._allowed(topic, self.subscribing.get(app_id))

    def _allowed(self, topic: str, scoped: frozenset[str] | None) -> bool:
        if self.allowed_topics and topic not in self.allowed_topics:
            return False
        if scoped is None:
            return topic not in self.protected_topics
        return topic in scoped


def _topics(value: str) -> frozenset[str]:
    """A csv list; empty means none. ``a,,b`` holds the empty topic, as Dapr's split does."""
    value = value.replace(" ", "")
    return frozenset(value.split(",")) if value else _NOTHING


def _scopes(name: str, value: str) -> dict[str, frozenset[str]]:
    value = value.replace(" ", "")
    scopes: dict[str, frozenset[str]] = {}
    for entry in value.split(";"):
        if not entry:
            continue  # "app1=a;" and ";;" are fine
        app, equals, topics = entry.partition("=")
        if not equals:
            raise MetadataError(name, f"entry {entry!r} must be <app id>=<topic>,<topic>...")
        if not app:
            raise MetadataError(name, f"entry {entry!r} names no app id before '='")
        if "=" in topics:
            raise MetadataError(name, f"entry {entry!r} has more than one '='; separate apps with ';'")
        # "app1=" scopes app1 to no topic at all (Dapr's list holds the empty topic).
        scopes[app] = scopes.get(app, _NOTHING) | frozenset(topics.split(","))
    return scopes
