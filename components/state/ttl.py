"""Expiry arithmetic shared by the state backends."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from components.errors import InvalidStateRequestError

# Larger TTLs overflow the stores' clocks; 2**31-1 s is about 68 years.
MAX_TTL_SECONDS = 2**31 - 1


def parse_ttl(raw: str | None) -> int | None:
    """Decode the ``ttlInSeconds`` metadata value: None, -1 (never expire) or a positive count."""
    if raw is None or raw == "":
        return None
    try:
        ttl = int(raw)
    except ValueError:
        raise InvalidStateRequestError(
            f"incorrect value for metadata 'ttlInSeconds': {raw!r} is not an integer"
        ) from None
    if ttl < -1 or ttl > MAX_TTL_SECONDS:
        raise InvalidStateRequestError(
            f"incorrect value for metadata 'ttlInSeconds': {ttl} (use -1 or 0..{MAX_TTL_SECONDS})"
        )
    return ttl


def expiry_deadline(ttl: int | None, now: float | None = None) -> float | None:
    """The UNIX time at which a value written now with ``ttl`` expires (None: never)."""
    if ttl is None or ttl <= 0:
        return None
    return (time.time() if now is None else now) + ttl


def as_datetime(deadline: float | None) -> datetime | None:
    return None if deadline is None else datetime.fromtimestamp(deadline, tz=UTC)
