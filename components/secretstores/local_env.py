"""secretstores.local.env: the sidecar's environment variables as secrets (Dapr's env store).

Metadata: ``prefix`` (optional, case-sensitive): secret ``name`` reads variable ``<prefix><name>``
and the bulk answer lists only variables with the prefix, named without it.

As daprd does, variables that hold the sidecar's own credentials are never served: ``APP_API_TOKEN``
and any ``DAPR_*`` variable, and l8's own ``L8_*`` settings (``L8_API_TOKEN``...), any case. An unset
(or refused) variable answers ``{name: ""}``, as daprd does, not an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import structlog

from components.metadata import ComponentMetadata, decode
from components.secretstores.base import Feature

log = structlog.get_logger(__name__)

_REFUSED_PREFIXES = ("DAPR_", "L8_")


class LocalEnvMetadata(ComponentMetadata):
    prefix: str = ""


def _allowed(variable: str) -> bool:
    upper = variable.upper()
    return upper != "APP_API_TOKEN" and not upper.startswith(_REFUSED_PREFIXES)


class LocalEnvSecretStore:
    def __init__(self) -> None:
        self._prefix = ""

    async def init(self, metadata: Mapping[str, str]) -> None:
        self._prefix = decode(LocalEnvMetadata, metadata).prefix

    def features(self) -> frozenset[Feature]:
        return frozenset()

    async def get(self, name: str, metadata: Mapping[str, str]) -> dict[str, str] | None:
        variable = self._prefix + name
        if not _allowed(variable):
            log.warning("access to this environment variable is refused", secret=name)
            return {name: ""}
        return {name: os.environ.get(variable, "")}

    async def bulk_get(self, metadata: Mapping[str, str]) -> dict[str, dict[str, str]]:
        prefix = self._prefix
        found: dict[str, dict[str, str]] = {}
        for variable, value in os.environ.items():
            if prefix and (len(variable) <= len(prefix) or not variable.startswith(prefix)):
                continue
            if _allowed(variable):
                name = variable[len(prefix) :]
                found[name] = {name: value}
        return found

    async def close(self) -> None:
        return None
