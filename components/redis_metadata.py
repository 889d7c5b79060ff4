"""The connection fields of a Redis in Dapr's metadata names, apart from the client code so that
l8's settings can be read without importing redis-py (it is imported when a Redis is used)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator

from components.metadata import ComponentMetadata, Duration, GoBool, metadata_error


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
