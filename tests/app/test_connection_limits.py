"""The connection limit in force for an open-file limit (app/http_protocol.py); the process-level
behaviour is in tests/e2e/test_connections.py."""

from __future__ import annotations

import resource

import pytest

from app.http_protocol import GO_READ_SLACK, connection_cap, connection_limits


@pytest.mark.parametrize(
    ("wanted", "open_files", "cap"),
    [
        (10_000, 1024, 768),  # a quarter kept, at most 256
        (10_000, 512, 384),
        (10_000, 100, 75),
        (10_000, 1_048_576, 10_000),  # the setting when the open-file limit allows it
        (500, 1024, 500),
        (10_000, 1, 1),  # never zero
        (10_000, resource.RLIM_INFINITY, 10_000),
    ],
)
def test_the_connection_limit_stays_below_the_open_file_limit(wanted: int, open_files: int, cap: int) -> None:
    assert connection_cap(wanted, open_files) == cap


def test_the_head_limit_is_the_read_buffer_size_with_gos_slack() -> None:
    limits = connection_limits(
        header_timeout=10, idle_timeout=5, read_buffer_size=4096, max_header_count=100, max_connections=10
    )
    assert limits.max_head_bytes == 4096 + GO_READ_SLACK == 8192
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == hard or hard == resource.RLIM_INFINITY  # raised to the hard limit, as l8 starts
