"""TCP copy settings (``tcp_copy`` in the settings file), Layotto's keys and defaults, improved:

.. code-block:: yaml

    tcp_copy:
      switch: ON            # OFF (default): nothing is copied and the request path is untouched
      interval: 30          # seconds from one sampling window to the next
      duration: 10          # seconds a window stays open (equal to interval: always open)
      cpu_max_rate: 80      # fuse: no copying while l8 uses more than this % of one core
      mem_max_rate: 80      # fuse: no copying while l8's resident memory is above this % of RAM
      responses: false      # also copy what l8 answers
      dir: .l8/tcpcopy      # default <data_dir>/tcpcopy
      max_file_size: 64Mi   # a dump file is closed and a new one begun past this size
      max_files: 10         # the oldest dump files are deleted past this count
      queue_records: 10000  # what may wait for the writer; more is dropped and counted
      queue_bytes: 16Mi
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from components.metadata import is_truthy, parse_duration, parse_quantity
from mesh.settings import SettingsModel, settings_error

_SWITCH = {"ON": True, "TRUE": True, "OFF": False, "FALSE": False}


class TcpCopySettings(SettingsModel):
    """``tcp_copy`` as the settings file gives it."""

    switch: bool = False
    interval: float = 30.0
    duration: float | None = None
    """Default: one second, or the interval when that is shorter."""
    cpu_max_rate: float = Field(default=80.0, gt=0, le=100)
    mem_max_rate: float = Field(default=70.0, gt=0, le=100)
    responses: bool = False
    dir: Path | None = None
    max_file_size: int = 64 * 1024**2
    max_files: int = Field(default=10, gt=0)
    queue_records: int = Field(default=10_000, gt=0)
    queue_bytes: int = 16 * 1024**2

    @field_validator("switch", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> bool:
        enabled = value if isinstance(value, bool) else _SWITCH.get(str(value).strip().upper())
        if enabled is None:
            raise settings_error("ON or OFF")
        return enabled

    @field_validator("responses", mode="before")
    @classmethod
    def _responses(cls, value: Any) -> bool:
        return is_truthy(value)

    @field_validator("interval", "duration", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> float | None:
        if value is None:
            return None
        try:
            seconds = parse_duration(value).total_seconds()
        except ValueError:
            raise settings_error(f"{value!r} is not a number") from None
        if seconds <= 0:
            raise settings_error("must be above 0")
        return seconds

    @field_validator("cpu_max_rate", "mem_max_rate", "max_files", "queue_records", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise settings_error(f"{value!r} is not a number") from None
        return value

    @field_validator("max_file_size", "queue_bytes", mode="before")
    @classmethod
    def _size(cls, value: Any) -> int:
        try:
            size = parse_quantity(value)
        except ValueError:
            size = 0
        if size <= 0:
            raise settings_error(f"{value!r} is not a size (e.g. 64Mi, 512Ki)")
        return size

    @model_validator(mode="after")
    def _window_fits(self) -> TcpCopySettings:
        if self.duration is not None and self.duration > self.interval:
            raise settings_error("a window cannot be longer than the interval", "duration")
        return self


@dataclass(frozen=True, slots=True)
class CopyPolicy:
    enabled: bool = False
    interval: float = 30.0
    duration: float = 1.0
    cpu_max_rate: float = 80.0
    mem_max_rate: float = 70.0
    responses: bool = False
    folder: Path = Path(".l8/tcpcopy")
    max_file_size: int = 64 * 1024**2
    max_files: int = 10
    queue_records: int = 10_000
    queue_bytes: int = 16 * 1024**2

    def describe(self) -> dict[str, Any]:
        return {
            "switch": "ON" if self.enabled else "OFF",
            "interval": self.interval,
            "duration": self.duration,
            "cpuMaxRate": self.cpu_max_rate,
            "memMaxRate": self.mem_max_rate,
            "responses": self.responses,
            "dir": str(self.folder),
            "maxFileSize": self.max_file_size,
            "maxFiles": self.max_files,
        }


def copy_requested(settings: TcpCopySettings) -> bool:
    """Whether the settings switch TCP copy on."""
    return settings.switch


def parse_policy(settings: TcpCopySettings, data_dir: Path) -> CopyPolicy:
    """The policy of the settings, its files under ``data_dir`` unless they name a ``dir``."""
    return CopyPolicy(
        enabled=settings.switch,
        interval=settings.interval,
        duration=settings.duration if settings.duration is not None else min(1.0, settings.interval),
        cpu_max_rate=settings.cpu_max_rate,
        mem_max_rate=settings.mem_max_rate,
        responses=settings.responses,
        folder=settings.dir if settings.dir else data_dir / "tcpcopy",
        max_file_size=settings.max_file_size,
        max_files=int(settings.max_files),
        queue_records=int(settings.queue_records),
        queue_bytes=settings.queue_bytes,
    )
