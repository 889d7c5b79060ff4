"""Values of a Dapr ``Configuration``'s observability fields (``spec.metric``, ``spec.tracing``), read
with components-contrib's truthy spellings, so a typo fails start-up naming the field."""

from __future__ import annotations

from typing import Any

TRUE = frozenset({"true", "1", "t", "yes", "on"})
FALSE = frozenset({"false", "0", "f", "no", "off"})


def parse_bool(value: Any, where: str, error: type[ValueError]) -> bool:
    """``value`` as a boolean; ``error`` naming ``where`` when it is not one."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise error(f"{where}: {value!r} is not a boolean")
