"""What every Redis-backed component shares: the connection fields of its metadata (Dapr's names)
and the limits of the client's connection pool."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from components.metadata import ComponentMetadata, Duration, GoBool

REDIS_MAX_CLIENTS = 10_000
"""Redis's default ``maxclients``: the ceiling of an unbounded pool (redis-py's own default stops
at 100 connections and then fails commands with "Too many connections")."""


def metadata_error(reason: str) -> PydanticCustomError:
    # A custom error keeps pydantic's "Value error, " prefix out of the MetadataError message.
    return PydanticCustomError("value_error", "{reason}", {"reason": reason})


class RedisConnectionMetadata(ComponentMetadata):
    redisHost: str
    redisUsername: str | None = None
    redisPassword: str | None = None
    redisDB: int = Field(default=0, ge=0)
    enableTLS: GoBool = False
    dialTimeout: Duration = timedelta(seconds=5)
    readTimeout: Duration = timedelta(seconds=3)
    """Zero or negative waits forever."""
    poolSize: int | None = Field(default=None, ge=1)

    @field_validator("redisHost")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        value = value.strip()
        host, colon, port = value.rpartition(":")
        if not colon or not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
            raise metadata_error(f"{value!r} is not of the form host:port")
        return value
