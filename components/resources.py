"""Reading Dapr resource files (``--resources-path``): Component documents now; other kinds
(Subscription, Resiliency, HTTPEndpoint, Configuration) are kept for the building blocks that
read them and otherwise skipped with a log line.

Metadata values may be any YAML scalar. Supported substitutions: ``envRef: VAR`` (Dapr's), the
placeholders ``{uuid}``, ``{appID}``, ``{podName}`` and ``{namespace}`` (Dapr's), and
``{env:VAR}`` / ``{env:VAR:default}`` inside a value (l8's). A ``secretKeyRef: {name, key}`` item is
kept as a :class:`SecretRef` (``key`` defaults to ``name``, as in Dapr) with the component's
``auth.secretStore``: the runtime resolves it from that secret store before the component starts.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog
import yaml

from components.metadata import is_truthy, parse_duration

log = structlog.get_logger(__name__)

COMPONENT_API_VERSION = "dapr.io/v1alpha1"
_ENV_PLACEHOLDER = re.compile(r"\{env:([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")


class ResourceError(Exception):
    """A resource cannot be used. Renders as one line naming file, component and field."""

    def __init__(
        self,
        source: str,
        message: str,
        component: str | None = None,
        field: str | None = None,
        *,
        kind: str = "component",
    ):
        parts = [source]
        if component:
            parts.append(f"{kind} {component!r}")
        if field:
            parts.append(f"field {field!r}")
        super().__init__(": ".join([*parts, message]))
        self.source = source
        self.component = component
        self.field = field


@dataclass(slots=True, frozen=True)
class SecretRef:
    """A metadata field whose value is a secret: ``field`` takes key ``key`` of secret ``name``."""

    field: str
    name: str
    key: str


@dataclass(slots=True, frozen=True)
class ComponentResource:
    name: str
    type: str
    version: str
    metadata: dict[str, str]
    source: str
    scopes: tuple[str, ...] = ()
    ignore_errors: bool = False
    init_timeout: float = 5.0
    secret_refs: tuple[SecretRef, ...] = ()
    """Metadata fields still to be read from a secret store (absent from ``metadata`` until then)."""
    secret_store: str = ""
    """``auth.secretStore``: where ``secret_refs`` are read."""


@dataclass(slots=True)
class Resources:
    components: list[ComponentResource] = field(default_factory=list)
    others: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)
    """(kind, document, source) of every non-Component document, for later building blocks."""


def resource_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        else:
            raise ResourceError(str(path), "resources path does not exist")


def load_resources(paths: Iterable[Path], app_id: str) -> Resources:
    resources = Resources()
    seen: dict[str, str] = {}
    for path in resource_files(paths):
        source = str(path)
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except OSError as exc:
            raise ResourceError(source, f"cannot read file: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ResourceError(source, f"invalid YAML{where}: {problem}") from None
        for document in documents:
            if document is None:
                continue
            if not isinstance(document, dict):
                raise ResourceError(source, "each YAML document must be a mapping")
            kind = document.get("kind")
            if kind != "Component":
                if not kind:
                    raise ResourceError(source, "document has no 'kind'")
                resources.others.append((str(kind), document, source))
                log.info("resource kept for later", kind=kind, file=source)
                continue
            component = _component(document, source, app_id)
            if component is None:
                continue
            if component.name in seen:
                raise ResourceError(
                    source,
                    f"duplicate component name (also defined in {seen[component.name]})",
                    component.name,
                )
            seen[component.name] = source
            resources.components.append(component)
    return resources


def _component(document: dict[str, Any], source: str, app_id: str) -> ComponentResource | None:
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not name:
        raise ResourceError(source, "component has no metadata.name", field="metadata.name")
    api_version = document.get("apiVersion")
    if api_version != COMPONENT_API_VERSION:
        raise ResourceError(source, f"apiVersion must be {COMPONENT_API_VERSION}", name, "apiVersion")
    scopes = document.get("scopes") or []
    if not isinstance(scopes, list):
        raise ResourceError(source, "scopes must be a list of app ids", name, "scopes")
    if scopes and app_id not in scopes:
        log.info("component not in scope for this app", component=name, app_id=app_id, file=source)
        return None
    spec = document.get("spec")
    if not isinstance(spec, dict):
        raise ResourceError(source, "component has no spec", name, "spec")
    component_type = spec.get("type")
    if not isinstance(component_type, str) or "." not in component_type:
        raise ResourceError(source, "spec.type must look like state.redis", name, "spec.type")
    version = spec.get("version", "v1")
    try:
        init_timeout = parse_duration(spec.get("initTimeout", "5s")).total_seconds()
    except ValueError as exc:
        raise ResourceError(source, str(exc), name, "spec.initTimeout") from None
    auth = document.get("auth") or {}
    if not isinstance(auth, dict) or not isinstance(auth.get("secretStore", ""), str):
        raise ResourceError(source, "auth must be {secretStore: <name>}", name, "auth.secretStore")
    secret_refs: list[SecretRef] = []
    return ComponentResource(
        name=name,
        type=component_type,
        version="" if version is None else str(version),
        metadata=_metadata(spec.get("metadata"), source, name, app_id, secret_refs),
        source=source,
        scopes=tuple(str(scope) for scope in scopes),
        ignore_errors=is_truthy(spec.get("ignoreErrors", False)),
        init_timeout=init_timeout,
        secret_refs=tuple(secret_refs),
        secret_store=auth.get("secretStore", ""),
    )


def secret_key_ref(value: Any, source: str, component: str | None, field: str) -> tuple[str, str]:
    """``(name, key)`` of a ``secretKeyRef: {name, key}`` (``key`` defaults to ``name``)."""
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"]:
        raise ResourceError(source, "secretKeyRef needs a name (and optionally a key)", component, field)
    key = value.get("key")
    if key is not None and not isinstance(key, str):
        raise ResourceError(source, "secretKeyRef.key must be a string", component, field)
    return value["name"], key or value["name"]


def _metadata(
    items: Any, source: str, component: str, app_id: str, secret_refs: list[SecretRef]
) -> dict[str, str]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise ResourceError(
            source, "spec.metadata must be a list of {name, value}", component, "spec.metadata"
        )
    values: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ResourceError(source, "each metadata item needs a name", component, "spec.metadata")
        name = item["name"]
        if "secretKeyRef" in item:
            secret, key = secret_key_ref(item["secretKeyRef"], source, component, name)
            secret_refs.append(SecretRef(name, secret, key))
            continue
        if "envRef" in item:
            variable = str(item["envRef"])
            if variable not in os.environ:
                raise ResourceError(source, f"envRef names unset variable {variable}", component, name)
            values[name] = os.environ[variable]
            continue
        values[name] = _substitute(_scalar(item.get("value")), source, component, name, app_id)
    return values


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value, default=str).decode()


def _substitute(value: str, source: str, component: str, name: str, app_id: str) -> str:
    if "{" not in value:
        return value

    def env(match: re.Match[str]) -> str:
        variable, default = match.group(1), match.group(2)
        if variable in os.environ:
            return os.environ[variable]
        if default is not None:
            return default
        raise ResourceError(source, f"{{env:{variable}}} names unset variable {variable}", component, name)

    value = _ENV_PLACEHOLDER.sub(env, value)
    namespace = os.environ.get("NAMESPACE", "default")
    replacements: dict[str, Callable[[], str]] = {
        "{uuid}": lambda: str(uuid.uuid4()),
        "{appID}": lambda: app_id,
        "{podName}": lambda: os.environ.get("POD_NAME", socket.gethostname()),
        "{namespace}": lambda: f"{namespace}.{app_id}",
    }
    for placeholder, produce in replacements.items():
        if placeholder in value:
            value = value.replace(placeholder, produce())
    return value
