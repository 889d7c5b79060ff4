"""The HTTP protocol that copies: uvicorn's httptools protocol with a tee on the bytes it reads (and,
with ``responses: true``, writes). It is used only while TCP copy is switched on; otherwise l8 runs
uvicorn's own protocol and the copy costs nothing.

A connection is copied from the first request that begins while a window is open to the first
request boundary after the window closed (mesh/tcpcopy/copier.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mesh.tcpcopy.copier import TcpCopy
from mesh.tcpcopy.dumpfile import CLOSED, OPENED, REQUEST, RESPONSE


class _TeeTransport:
    """The connection's transport, with what is written also offered to the copier."""

    def __init__(self, transport: asyncio.Transport, protocol: CopyingProtocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        protocol = self._protocol
        copied = protocol.copy_answers and protocol.pending and data
        if copied and not protocol.copier.offer(RESPONSE, protocol.port, protocol.connection, bytes(data)):
            protocol.hole()
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CopyingProtocol(HttpToolsProtocol):
    copier: TcpCopy  # set on the subclass copying_protocol() makes

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.copying = False
        self.in_message = False
        self.pending = 0
        """Copied requests whose answers have not been written whole yet."""
        self.connection = 0
        self.copy_answers = self.copier.policy.responses
        sockname = transport.get_extra_info("sockname")
        self.port = int(sockname[1]) if isinstance(sockname, tuple) else 0
        wrapped: Any = _TeeTransport(transport, self) if self.copy_answers else transport
        super().connection_made(wrapped)

    def data_received(self, data: bytes) -> None:
        copier = self.copier
        if self.copying:
            if not self.in_message and not copier.window:
                self.copying = False
        elif copier.window and not self.in_message:
            self.copying = True
            if not self.connection:
                self.connection = copier.new_connection()
                peer = f"{_address(self.client)}>{_address(self.server)}".encode()
                copier.offer(OPENED, self.port, self.connection, peer)
        if self.copying and not copier.offer(REQUEST, self.port, self.connection, data):
            self.hole()
        super().data_received(data)

    def hole(self) -> None:
        """A record was dropped: this copy of the connection ends; a later one starts afresh
        (under a new connection number, at a request boundary)."""
        self.copying = False
        self.pending = 0
        self.connection = 0

    def handle_websocket_upgrade(self) -> None:
        self.copy_answers = False  # frames are not HTTP: the copy ends with the upgrade request
        self.hole()
        super().handle_websocket_upgrade()

    def on_message_begin(self) -> None:
        self.in_message = True
        if self.copying:
            self.pending += 1
        super().on_message_begin()

    def on_message_complete(self) -> None:
        self.in_message = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self.pending:
            self.pending -= 1
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.connection:
            self.copier.offer(CLOSED, self.port, self.connection, b"")
        super().connection_lost(exc)


def copying_protocol(
    copier: TcpCopy, base: type[HttpToolsProtocol] = HttpToolsProtocol
) -> type[CopyingProtocol]:
    """The protocol class uvicorn is given (``http=``) when TCP copy is on: the copy over ``base``
    (the assembly passes its own protocol, so that its connection limits hold while copying)."""
    bases = (CopyingProtocol,) if base is HttpToolsProtocol else (CopyingProtocol, base)
    return type("CopyingProtocol", bases, {"copier": copier})


def _address(address: tuple[str, int | None] | None) -> str:
    return f"{address[0]}:{address[1]}" if address else "-"
