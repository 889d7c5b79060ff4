"""The channel to this sidecar's own app (``--app-port``): one pooled HTTP client, owned by the
runtime, used for pub/sub delivery, subscription discovery and, later, invocation.

aiohttp rather than httpx on this path: httpx 0.28's pool costs about 0.5 ms per request and
collapses under concurrency (../shared/reference/platform-notes.md); delivery at 1,000 msg/s with a
p99 of a few milliseconds needs the faster client. aiohttp is imported when the channel starts,
so a sidecar without an app does not carry it (about 8 MB and 100 ms of start-up).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from multidict import CIMultiDict, CIMultiDictProxy

from app.settings import Settings
from mesh.proxy import client_session

if TYPE_CHECKING:
    import aiohttp


class AppUnreachable(Exception):
    """The app could not be reached or did not answer (refused, reset, timed out)."""


@dataclass(slots=True, frozen=True)
class AppResponse:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class AppChannel:
    def __init__(self, settings: Settings, *, max_connections: int = 256) -> None:
        self.app_id = settings.app_id
        self.port = settings.app_port
        self.base_url = (
            f"{settings.app_protocol}://{settings.app_channel_address}:{settings.app_port}"
            if settings.app_port is not None
            else None
        )
        self._token = settings.app_api_token.get_secret_value() if settings.app_api_token else None
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    @property
    def configured(self) -> bool:
        """Whether l8 has an app to talk to (``--app-port`` given)."""
        return self.base_url is not None

    async def start(self) -> None:
        if self._session is None and self.configured:
            self._session = client_session(self._max_connections, ("User-Agent",))

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - aiohttp's own per-request timeout
    ) -> AppResponse:
        """One call to the app; ``path`` gets a leading ``/`` if it lacks one. Adds
        ``dapr-api-token`` when APP_API_TOKEN is set. Raises :class:`AppUnreachable` on any
        transport failure or timeout; every HTTP status is a response."""
        if self._session is None or self.base_url is None:
            raise AppUnreachable("no app channel: l8 was started without --app-port")
        outgoing: CIMultiDict[str] = CIMultiDict(headers or {})
        if self._token is not None:
            outgoing["dapr-api-token"] = self._token
        if not path.startswith("/"):
            path = "/" + path
        import aiohttp  # imported by start(): a dictionary look-up here

        try:
            async with self._session.request(
                method,
                self.base_url + path,
                data=body,
                headers=outgoing,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                return AppResponse(response.status, response.headers, await response.read())
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise AppUnreachable(f"app at {self.base_url} did not answer {method} {path}: {exc!r}") from None

    async def listening(self, timeout: float = 0.5) -> bool:  # noqa: ASYNC109 - a connect deadline
        """Whether the app's port accepts TCP connections right now."""
        if self.port is None:
            return False
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
        # arrives as the connect completes, and a poller built on it then never stops.
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection(self._host(), self.port)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True
        return False

    def _host(self) -> str:
        assert self.base_url is not None
        return self.base_url.split("://", 1)[1].rsplit(":", 1)[0]
