"""The mesh's settings (``name_resolution``, ``rate_limits``, ``tcp_copy`` in l8's settings file) as
pydantic models, and their one-line errors: every error names the setting's path
(``rate_limits.rules[0].threshold: a whole number above zero``) and is raised as SettingsError.

A model refuses fields it does not know, listing the ones it does. A Redis the mesh keeps data in is
described by Dapr's Redis component fields (``redisHost``, ``redisUsername``, ``redisPassword``,
``redisDB``, ``enableTLS``, ``dialTimeout``, ``readTimeout``, ``poolSize``), decoded by the same
model the Redis components use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from components.errors import MetadataError
from components.metadata import decode
from components.redis_metadata import RedisConnectionMetadata
from mesh.errors import SettingsError

REDIS_FIELDS = frozenset(RedisConnectionMetadata.model_fields)
_URL_SCHEMES = ("redis://", "http://", "https://")
_PLAIN = {
    "greater_than": "must be above {gt:g}",
    "greater_than_equal": "must be at least {ge:g}",
    "less_than": "must be below {lt:g}",
    "less_than_equal": "must be at most {le:g}",
    "int_parsing": "{input!r} is not a whole number",
    "int_from_float": "{input!r} is not a whole number",
    "int_type": "{input!r} is not a whole number",
    "float_parsing": "{input!r} is not a number",
    "float_type": "{input!r} is not a number",
    "bool_parsing": "{input!r} is not a boolean",
    "bool_type": "{input!r} is not a boolean",
    "string_type": "{input!r} is not a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "missing": "is required",
}


def settings_error(reason: str, field: str | None = None) -> PydanticCustomError:
    """What a settings model's validator raises: ``reason`` becomes the message, ``field`` (a key
    under the model being validated) is added to the path it names."""
    context: dict[str, Any] = {"reason": reason}
    if field is not None:
        context["field"] = field
    return PydanticCustomError("l8_setting", "{reason}", context)


class SettingsModel(BaseModel):
    """Base of the mesh's settings models: frozen, and unknown fields refused by name."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    known_extra: ClassVar[frozenset[str]] = frozenset()
    """Keys a before-validator takes out of the mapping itself (the Redis connection's)."""
    derived: ClassVar[frozenset[str]] = frozenset()
    """Fields a before-validator fills in from those keys: not given in the settings file."""

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        fields = {info.alias or name for name, info in cls.model_fields.items()} - cls.derived
        known = fields | cls.known_extra
        unknown = sorted(str(key) for key in data if str(key) not in known)
        if unknown:
            listing = ", ".join(sorted(known))
            raise settings_error(f"unknown field (known: {listing})", unknown[0])
        return cls.prepare(data)

    @classmethod
    def prepare(cls, data: Mapping[Any, Any]) -> Any:
        """The mapping as the fields take it, once every key is known to be one of ours."""
        return data


M = TypeVar("M", bound=BaseModel)


def parse_settings(model: type[M], raw: Any, section: str) -> M:
    """``raw`` (a mapping from the settings file, or already a model) as ``model``; SettingsError
    naming the field when it does not fit."""
    if isinstance(raw, model):
        return raw
    try:
        return model.model_validate({} if raw is None else raw)
    except ValidationError as exc:
        raise SettingsError(describe(exc, section)) from None


def describe(error: ValidationError, section: str) -> str:
    """The first error of ``error`` in one line: ``<section>.<path>: <reason>``."""
    first = error.errors()[0]
    context = first.get("ctx") or {}
    cause = context.get("error")
    if isinstance(cause, SettingsError):  # already names its whole path
        return str(cause)
    where = section
    for part in first["loc"]:
        where += f"[{part}]" if isinstance(part, int) else f".{part}"
    if "field" in context:
        where += f".{context['field']}"
    plain = _PLAIN.get(first["type"])
    if plain is not None:
        return f"{where}: {plain.format(input=first.get('input'), **context)}"
    return f"{where}: {first['msg'].removeprefix('Value error, ')}"


def redis_connection(
    data: Mapping[str, Any], defaults: Mapping[str, str] | None = None
) -> RedisConnectionMetadata | None:
    """The Redis connection named by the Redis fields of ``data`` (None without ``redisHost``), with
    the caller's ``defaults`` for fields not given. Raises the validator's error naming the field."""
    raw = {str(key): value for key, value in data.items() if key in REDIS_FIELDS and value is not None}
    if not raw.get("redisHost"):
        return None
    host = str(raw["redisHost"]).strip()
    for scheme in _URL_SCHEMES:
        host = host.removeprefix(scheme)
    raw["redisHost"] = host.rstrip("/")
    try:
        return decode(RedisConnectionMetadata, {**(defaults or {}), **raw})
    except MetadataError as exc:
        raise settings_error(exc.message, exc.field) from None
