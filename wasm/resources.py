"""``WasmFunction`` resources: functions declared in the resources folder, beside the components,
in Dapr's document style (l8's own kind, so its own apiVersion):

```yaml
apiVersion: l8.dev/v1alpha1
kind: WasmFunction
metadata: {name: id_1}          # the id the module's proxy_get_id sets
spec:
  url: file://functions/function_1.wasm   # file:// or a plain path, relative to this file's folder
  instanceNum: 2
  timeout: 5s
  memoryPages: 256
  poolWait: 5s
  config: {greeting: hi}
scopes: [app-a]                 # as a Component's: only these app ids load it
```

Each becomes the settings file's :class:`FunctionSettings` (the same validation, so the two forms
cannot drift). A bad document, or a name declared twice (in two documents, or here and in the
settings file's ``wasm.functions``), fails start-up with one line naming the file and field.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from components.resources import ResourceError
from mesh.settings import describe
from wasm.settings import FunctionSettings
from wasm.wasi_command import module_file

API_VERSION = "l8.dev/v1alpha1"
KIND = "WasmFunction"
_SPEC_FIELDS = ("url", "instanceNum", "config", "timeout", "memoryPages", "poolWait")


@dataclass(slots=True, frozen=True)
class FunctionResource:
    """One function from the resources folder: its settings and the file that declared it."""

    settings: FunctionSettings
    source: str

    def error(self, message: str, field: str | None = None) -> ResourceError:
        return ResourceError(self.source, message, self.settings.name, field, kind="function")


def function_resources(
    others: Iterable[tuple[str, Mapping[str, Any], str]],
    app_id: str,
    declared: Iterable[str] = (),
) -> list[FunctionResource]:
    """The ``WasmFunction`` documents among ``Resources.others`` in scope for ``app_id``, in file
    order. ``declared``: the names of the settings file's functions, which no resource may reuse."""
    seen = {name: "the settings file (wasm.functions)" for name in declared}
    found: list[FunctionResource] = []
    for kind, document, source in others:
        if kind != KIND:
            continue
        function = _function(document, source, app_id)
        if function is None:
            continue
        name = function.settings.name
        if name in seen:
            raise function.error(f"duplicate function name (also declared in {seen[name]})", "metadata.name")
        seen[name] = source
        found.append(function)
    return found


def _function(document: Mapping[str, Any], source: str, app_id: str) -> FunctionResource | None:
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(name, str) or not name:
        raise ResourceError(source, f"{KIND} has no metadata.name", field="metadata.name")

    def fail(message: str, field: str) -> ResourceError:
        return ResourceError(source, message, name, field, kind="function")

    if document.get("apiVersion") != API_VERSION:
        raise fail(f"apiVersion must be {API_VERSION}", "apiVersion")
    scopes = document.get("scopes") or []
    if not isinstance(scopes, list):
        raise fail("scopes must be a list of app ids", "scopes")
    if scopes and app_id not in [str(scope) for scope in scopes]:
        return None
    spec = document.get("spec")
    if not isinstance(spec, Mapping):
        raise fail("a function needs a spec with its url", "spec")
    unknown = sorted(str(key) for key in spec if key not in _SPEC_FIELDS)
    if unknown:
        raise fail(f"unknown field (known: {', '.join(sorted(_SPEC_FIELDS))})", f"spec.{unknown[0]}")
    url = spec.get("url")
    if not isinstance(url, str) or not url.strip():
        raise fail("the module's url is required (file://path, relative to this file's folder)", "spec.url")
    try:
        path = Path(module_file(url.strip()))
    except ValueError as exc:
        raise fail(str(exc), "spec.url") from None
    if not path.is_absolute():
        path = Path(os.path.abspath(Path(source).parent / path))
    raw = {key: value for key, value in spec.items() if key != "url"}
    try:
        settings = FunctionSettings.model_validate({**raw, "name": name, "path": path})
    except ValidationError as exc:
        field, _, reason = describe(exc, "spec").partition(": ")
        raise fail(reason, field) from None
    return FunctionResource(settings, source)
