"""The optional health contract: a component whose backend can fail (a server, a database file)
answers :meth:`HealthCheck.ping`, and the actuator's readiness (services/actuator.py) reports it.

A component without it (in-memory stores, environment secrets, cron) is up once started."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class HealthCheck(Protocol):
    async def ping(self) -> None:
        """Return once the backend answered a trivial request (Redis PING, etcd status, Kafka
        metadata, ``SELECT 1``); raise ``BackendError`` when it did not. The caller bounds it with a
        short timeout and calls it at most about once a second, so it must not queue behind work
        of its own (a lock, a batch)."""
        ...
