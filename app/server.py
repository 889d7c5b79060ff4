"""Serving the app: uvicorn on uvloop + httptools (with l8's connection limits), graceful shutdown
on SIGTERM/SIGINT and on POST /v1.0/shutdown, and start-up errors reported as one line."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
from collections.abc import Callable, Iterator

import structlog
import uvicorn

from app import __version__
from app.factory import create_app
from app.http_protocol import connection_limits, sidecar_protocol
from app.logging import configure_logging
from app.settings import Settings
from app.startup import StartupError
from mesh.tcpcopy import TcpCopy, copy_requested

log = structlog.get_logger(__name__)


class _Server(uvicorn.Server):
    """uvicorn re-raises a caught SIGTERM once it has stopped, which would kill the process before
    the components are closed; l8 handles the signal itself and closes everything first."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        handled = (signal.SIGINT, signal.SIGTERM)
        for sig in handled:
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            yield
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_exit = on_exit
        """Called as stopping begins, before in-flight requests drain (health answers not ready)."""

    def stop(self) -> None:
        self.on_exit()
        self.should_exit = True

    def _on_signal(self, sig: int) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C stops waiting for in-flight requests
        log.info("stopping", signal=signal.Signals(sig).name)
        self.stop()


def _tune_gc() -> None:
    # Everything allocated at start-up lives for the whole run; freezing it and raising the
    # thresholds keeps gen-2 collections (tens of ms) off the request path.
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)


async def serve(settings: Settings) -> int:
    copier = TcpCopy() if copy_requested(settings.tcp_copy) else None
    app = create_app(settings, tcp_copy=copier)
    limits = connection_limits(
        header_timeout=settings.header_timeout,
        idle_timeout=settings.idle_timeout,
        read_buffer_size=settings.read_buffer_size,
        max_header_count=settings.max_header_count,
        max_connections=settings.max_connections,
    )
    protocol = sidecar_protocol(limits)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.http_port,
        lifespan="off",  # the lifespan is driven below, so start-up errors stay one clean line
        loop="none",
        http=protocol,
        timeout_keep_alive=limits.idle_timeout,  # type: ignore[arg-type]  # used as a float delay
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,  # a sidecar is reached on loopback by its app: no proxy to trust
        timeout_graceful_shutdown=round(settings.graceful_shutdown_seconds),
    )
    if copier is not None:
        from mesh.tcpcopy.protocol import copying_protocol

        config.http = copying_protocol(copier, base=protocol)
    server = _Server(config, app.sidecar.readiness.stop)
    app.sidecar.shutdown.connect(server.stop)
    try:
        async with app.lifespan():
            _tune_gc()
            log.info(
                "l8 listening",
                version=__version__,
                address=f"http://{settings.host}:{settings.http_port}",
                app_id=settings.app_id,
            )
            await server.serve()
    except StartupError as exc:
        print(f"l8: {exc}", file=sys.stderr)
        return 1
    except SystemExit:
        print(f"l8: cannot listen on {settings.host}:{settings.http_port}", file=sys.stderr)
        return 1
    log.info("l8 stopped")
    return 0 if server.started else 1


def run(settings: Settings) -> int:
    configure_logging(settings)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard] on Linux
        return asyncio.run(serve(settings))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(serve(settings))
