"""``wasm`` in l8's settings file: the functions to load at start-up.

```yaml
wasm:
  functions:
    - name: id_1              # the id the module's proxy_get_id sets
      path: functions/function_1.wasm
      instanceNum: 2          # instances in the pool (default 1)
      config: {greeting: hi}  # handed to proxy_on_configure as JSON
      timeout: 5s             # wall time of one request (default 5s)
      memoryPages: 256        # linear memory cap in 64 KiB pages (default 256 = 16 MiB)
      poolWait: 5s            # how long a request waits for a free instance (default 5s)
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from components.metadata import parse_duration
from mesh.settings import SettingsModel, settings_error


class FunctionSettings(SettingsModel):
    name: str = Field(min_length=1)
    path: Path
    instance_num: int = Field(1, ge=1, le=1024, alias="instanceNum")
    config: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(5.0, gt=0)
    memory_pages: int = Field(256, ge=1, le=65536, alias="memoryPages")
    pool_wait: float = Field(5.0, gt=0, alias="poolWait")

    @field_validator("timeout", "pool_wait", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse_duration(value).total_seconds()
            except ValueError as exc:
                raise settings_error(str(exc)) from None
        return value

    @field_validator("config", mode="before")
    @classmethod
    def _config(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items()}
        return value


class WasmSettings(SettingsModel):
    functions: list[FunctionSettings] = Field(default_factory=list)
