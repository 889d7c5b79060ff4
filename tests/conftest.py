"""What every test shares: the real servers of the session, and a headless Chromium (tests/browser.py)."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from tests.browser import browser_page, chromium  # noqa: F401  (fixtures: headless Chromium)
from tests.servers import EtcdServer, KafkaServer, PostgresServer, RedisServer, S3Server


@pytest.fixture(autouse=True, scope="session")
def metrics_on_any_port() -> Iterator[None]:
    """Runtimes started in the test process keep metrics and the gRPC API on (their recording runs
    in every test), each on a port the system chooses: daprd's 9090 and 50001 would be taken by the
    first one, or by another process on the machine. A test of the port sets its own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("L8_METRICS_PORT", "0")
        # The same for the gRPC API: daprd's 50001 would be taken by the first runtime.
        patch.setenv("L8_GRPC_PORT", "0")
        yield


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the whole session (started on first use, on a free port, no persistence).

    Tests share it: each one keeps to keys of its own rather than flushing what others use.
    """
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def kafka_server() -> Iterator[KafkaServer]:
    """One Kafka-protocol broker (Tansu, in memory) for the whole session, on a free port.

    Tests share it: each one uses topics and consumer groups of its own.
    """
    with KafkaServer() as server:
        yield server


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    """One etcd for the whole session, on free client and peer ports; tests use key prefixes of
    their own."""
    with EtcdServer() as server:
        yield server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One S3-compatible server (moto's, in memory) for the whole session, on a free port; tests use
    buckets of their own."""
    with S3Server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL for the whole session, on a free port; tests use tables of their own."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of the test's own, which it may stop, restart or freeze (SIGSTOP)."""
    with RedisServer() as server:
        try:
            yield server
        finally:
            if server.running:
                server.send_signal(signal.SIGCONT)  # a frozen server would not stop on SIGTERM
