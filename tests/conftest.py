"""What every test shares: the real servers of the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the whole session (started on first use, on a free port, no persistence).

    Tests share it: each one keeps to keys of its own rather than flushing what others use.
    """
    with RedisServer() as server:
        yield server
