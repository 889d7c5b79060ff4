"""Running placement's change and fencing listeners."""

from __future__ import annotations

import asyncio

import structlog

from mesh.placement.base import ChangeListener

log = structlog.get_logger(__name__)


async def run_listeners(listeners: list[ChangeListener], what: str) -> None:
    """Run each listener in turn; one that fails is logged and does not stop the others."""
    for listener in list(listeners):
        try:
            await listener()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("placement listener failed", listeners=what)
