"""secretstores.local.file: secrets read from a JSON file at start-up (Dapr's local file store,
for development; the file is read once, as daprd reads it).

Metadata (Dapr's names): ``secretsFile`` (required; relative paths are from the working
directory), ``nestedSeparator`` (default ``:``) and ``multiValued`` (default false).

Single-valued (the default): the JSON document is flattened, nested keys joined by the separator
and array items numbered, so ``{"db": {"password": "x"}, "hosts": ["a"]}`` holds the secrets
``db:password`` and ``hosts:0``; each answers ``{name: value}``.

Multi-valued: each top-level key is one secret. A string is ``{name: value}``; an object is the
secret's key/value pairs, flattened the same way inside it (``{"db": {"user": "u", "tls":
{"ca": "..."}}}`` answers ``{"user": "u", "tls:ca": "..."}`` for ``db``). Top-level numbers,
booleans and arrays are not secrets in this mode (daprd skips them too).

Deviations from daprd, both on files daprd mishandles: two paths flattening to the same name fail
start-up naming it (daprd silently stops reading the file there), and numbers, booleans and
``null`` read as their JSON text (``true``, ``8080``, ``""``) rather than Go's ``%!s(bool=true)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from components.errors import ComponentInitError, MetadataError
from components.metadata import ComponentMetadata, GoBool, decode
from components.secretstores.base import Feature, SecretNotFoundError


class LocalFileMetadata(ComponentMetadata):
    secretsFile: str = ""
    nestedSeparator: str = ""
    multiValued: GoBool = False


class LocalFileSecretStore:
    def __init__(self) -> None:
        self._secrets: dict[str, dict[str, str]] = {}
        self._multi_valued = False

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(LocalFileMetadata, metadata)
        if not settings.secretsFile:
            raise MetadataError("secretsFile", "missing local secrets file in metadata")
        separator = settings.nestedSeparator or ":"
        document = await asyncio.to_thread(_read, Path(settings.secretsFile))
        self._multi_valued = settings.multiValued
        if settings.multiValued:
            for name, value in document.items():
                if isinstance(value, str):
                    self._secrets[name] = {name: value}
                elif isinstance(value, dict):
                    self._secrets[name] = _flatten(value, separator)
        else:
            self._secrets = {name: {name: value} for name, value in _flatten(document, separator).items()}

    def features(self) -> frozenset[Feature]:
        return frozenset({Feature.MULTIPLE_KEY_VALUES_PER_SECRET}) if self._multi_valued else frozenset()

    async def get(self, name: str, metadata: Mapping[str, str]) -> dict[str, str] | None:
        secret = self._secrets.get(name)
        if secret is None:
            raise SecretNotFoundError(name)
        return dict(secret)

    async def bulk_get(self, metadata: Mapping[str, str]) -> dict[str, dict[str, str]]:
        return {name: dict(secret) for name, secret in self._secrets.items()}

    async def close(self) -> None:
        self._secrets = {}


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ComponentInitError(f"cannot read {path}: {exc.strerror or exc}", "secretsFile") from None
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # The position only: the decoder's message could quote the file's (secret) text.
        raise ComponentInitError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno})", "secretsFile"
        ) from None
    if not isinstance(document, dict):
        raise ComponentInitError(f"{path} must hold a JSON object", "secretsFile")
    return document


def _flatten(node: dict[str, Any], separator: str) -> dict[str, str]:
    flat: dict[str, str] = {}

    def visit(value: Any, path: list[str]) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                visit(item, [*path, key])
        elif isinstance(value, list):
            for index, item in enumerate(value):
                visit(item, [*path, str(index)])
        else:
            name = separator.join(path)
            if name in flat:
                raise ComponentInitError(f"the secret {name!r} is defined twice", "secretsFile")
            flat[name] = _text(value)

    for key, value in node.items():
        visit(value, [key])
    return flat


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return orjson.dumps(value).decode()
