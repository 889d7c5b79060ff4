"""What the metadata of every wasm component says about its module, in the same words: ``url``
(wasm/wasi_command.py's ``module_file`` reads it), and l8's two limits, ``timeout`` (a Go duration:
a run past it is stopped) and ``maxMemory`` (a quantity: the guest's linear memory cap). Each
component gives its own defaults by declaring the field again."""

from __future__ import annotations

from datetime import timedelta

from pydantic import field_validator

from components.metadata import ComponentMetadata, Duration, metadata_error, parse_quantity
from wasm.wasi_command import Limits

WASM_PAGE = 65536


class WasmModuleMetadata(ComponentMetadata):
    url: str
    timeout: Duration = timedelta(seconds=30)
    maxMemory: str = "256Mi"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.strip():
            raise metadata_error("must not be empty")
        return value.strip()

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise metadata_error("must be positive")
        return value

    @field_validator("maxMemory")
    @classmethod
    def _memory(cls, value: str) -> str:
        if parse_quantity(value) < WASM_PAGE:
            raise metadata_error("must be at least one wasm page (64Ki)")
        return value

    @property
    def limits(self) -> Limits:
        """What a run of the module may take: its deadline and its memory cap."""
        return Limits(self.timeout.total_seconds(), parse_quantity(self.maxMemory))
