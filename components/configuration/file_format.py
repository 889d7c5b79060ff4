"""The YAML file of configuration.file: how it reads and how it is written back.

The format::

    # The default group and label: `key: value`, or the long form.
    greeting: hello               # a scalar: the text written is the value
    retries: {value: "3", version: "12", metadata: {owner: ops}, tags: {team: payments}}
    groups:                       # reserved: the other groups and labels
      payments:                   # <group>
        prod:                     # <label>
          limit: "100"            # key: value, or the long form
          fee: {value: "0.5", tags: {reviewed: "yes"}}

Every scalar is read as the text written, without YAML's typing (``yes``, ``0x10``, ``1.50`` and
``null`` stay as written; an empty value is the empty string). The long form is a mapping with a
``value`` and optionally ``version``, ``metadata`` and ``tags`` (mappings of text); any other
field, or a list, is an error. A default item named ``groups`` lives under
``groups: {default: {default: ...}}``, the one place for it; an item written twice (at the top
level and there) is the one written last.

An item's version is its ``version`` when one is written, else a short hash of its value,
metadata and tags: an item nobody touches keeps its version across reloads and restarts, and an
edited one gets a new one. A save writes an explicit version (the old one plus one when it is a
number, 1 for a new item, else the clock in nanoseconds), so saving an unchanged item still
changes its version.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from components.configuration.base import DEFAULT_GROUP, DEFAULT_LABEL, ConfigurationItem
from components.configuration.subscriptions import Address

GROUPS = "groups"
_LONG_FORM_FIELDS = frozenset({"value", "version", "metadata", "tags"})
_NUMBER = re.compile(r"[0-9]{1,18}\Z")


class _TextLoader(yaml.SafeLoader):
    """Reads every plain scalar as the text written: no bools, numbers, nulls or dates."""


_TextLoader.yaml_implicit_resolvers = {}


class _Dumper(yaml.SafeDumper):
    pass


def _represent_text(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_Dumper.add_representer(str, _represent_text)


@dataclass(frozen=True, slots=True)
class Entry:
    """One item as the file holds it."""

    value: str
    version: str | None = None
    """None: not written, derived from the content."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)

    def item(self, where: Address) -> ConfigurationItem:
        group, label, key = where
        version = self.version if self.version is not None else self.content_hash()
        return ConfigurationItem(key, self.value, version, self.metadata, group, label, self.tags)

    def content_hash(self) -> str:
        content = json.dumps([self.value, sorted(self.metadata.items()), sorted(self.tags.items())])
        return hashlib.sha256(content.encode()).hexdigest()[:16]

    def node(self) -> str | dict[str, Any]:
        """The short form when it says it all, else the long form without its empty fields."""
        if self.version is None and not self.metadata and not self.tags:
            return self.value
        fields = {"version": self.version, "metadata": dict(self.metadata), "tags": dict(self.tags)}
        return {"value": self.value} | {name: value for name, value in fields.items() if value}


def _text_map(node: Any, where: str) -> dict[str, str]:
    if node == "":
        return {}  # `tags:` left empty
    if not isinstance(node, dict) or not all(isinstance(v, str) for v in node.values()):
        raise ValueError(f"{where}: expected a mapping of text values")
    return {str(k): v for k, v in node.items()}


def _entry(node: Any, where: str) -> Entry:
    if isinstance(node, str):
        return Entry(node)
    if not isinstance(node, dict):
        raise ValueError(f"{where}: expected a text value or a mapping with a `value`")
    unknown = set(node) - _LONG_FORM_FIELDS
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(map(str, unknown))} (use value, version, "
                         "metadata, tags)")  # fmt: skip
    value, version = node.get("value"), node.get("version", "")
    if not isinstance(value, str) or not isinstance(version, str):
        raise ValueError(f"{where}.{'version' if isinstance(value, str) else 'value'}: expected a text value")
    metadata = _text_map(node.get("metadata", {}), f"{where}.metadata")
    tags = _text_map(node.get("tags", {}), f"{where}.tags")
    return Entry(value, version or None, metadata, tags)


def _mapping(node: Any, where: str) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise ValueError(f"{where}: expected a mapping")
    return node


def parse(text: str) -> dict[Address, Entry]:
    """The items of a file, in file order; ValueError saying where the file is wrong."""
    try:
        document = yaml.load(text, Loader=_TextLoader)  # a SafeLoader: builds no Python objects
    except yaml.YAMLError as exc:
        raise ValueError(" ".join(str(exc).split())) from None
    if document is None or document == "":
        return {}
    entries: dict[Address, Entry] = {}
    for key, node in _mapping(document, "the top level").items():
        if key != GROUPS:
            entries[(DEFAULT_GROUP, DEFAULT_LABEL, key)] = _entry(node, key)
            continue
        for group, labels in _mapping(node, GROUPS).items():
            for label, items in _mapping(labels, f"{GROUPS}.{group}").items():
                for item_key, item_node in _mapping(items, f"{GROUPS}.{group}.{label}").items():
                    where = f"{GROUPS}.{group}.{label}.{item_key}"
                    entries[(group, label, item_key)] = _entry(item_node, where)
    return entries


def render(entries: Mapping[Address, Entry]) -> str:
    document: dict[str, Any] = {}
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for (group, label, key), entry in entries.items():
        if (group, label) == (DEFAULT_GROUP, DEFAULT_LABEL) and key != GROUPS:
            document[key] = entry.node()
        else:
            groups.setdefault(group, {}).setdefault(label, {})[key] = entry.node()
    if groups:
        document[GROUPS] = groups
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def next_version(old: ConfigurationItem | None) -> str:
    """The old version plus one; a new item's is 1. An item whose version is not a number (a hash,
    or one an editor wrote) gets a number no earlier save of it can have given: the clock's."""
    if old is None:
        return "1"
    if _NUMBER.match(old.version):
        return str(int(old.version) + 1)
    return str(time.time_ns())
