"""bindings.http: an output binding that calls one HTTP endpoint, with Dapr's metadata and answers.

Metadata: ``url`` (required, the base URL); ``MTLSRootCA`` (a PEM, or a file holding one: the CA
the server's certificate is checked against), ``MTLSClientCert`` and ``MTLSClientKey`` (the client
certificate, both needed), ``MTLSRenegotiation`` (accepted for compatibility: Python's TLS never
renegotiates); ``securityToken`` sent in the header named ``securityTokenHeader`` on every request;
``responseTimeout`` (a Go duration; none by default); ``maxResponseBodySize`` (default ``100Mi``;
zero or less: no limit; a longer body is cut there, as Dapr cuts it); ``errorIfNot2XX`` (default
true).

Operations: ``get``, ``head``, ``post``, ``put``, ``patch``, ``delete``, ``options``, ``trace``, and
``create`` (a POST, kept by Dapr for older apps). ``post``, ``put``, ``patch`` and ``create`` send
the data as the body (``Content-Type: application/json; charset=utf-8`` unless the metadata sets
one). Request metadata: ``path`` is appended to the URL; every key starting with a capital letter
is a request header; ``traceparent``, ``tracestate`` and ``baggage`` are sent as headers;
``errorIfNot2XX`` overrides the component's setting.

The answer is the response body with metadata ``statusCode``, ``status`` (``200 OK``) and every
response header (several values joined with ``, ``). A status outside 2xx is an error
(``received status code 404``) unless ``errorIfNot2XX`` is false; the metadata still reaches the
caller as headers.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from datetime import timedelta
from http import HTTPStatus

import aiohttp
from pydantic import field_validator

from components.bindings.base import BindingError, Feature, InvokeRequest, InvokeResponse
from components.errors import BackendError, ComponentInitError
from components.metadata import ComponentMetadata, Duration, decode, is_truthy, metadata_error, parse_quantity

_FEATURES = frozenset({Feature.OUTPUT_BINDING})
_OPERATIONS = ("create", "get", "head", "post", "put", "patch", "delete", "options", "trace")
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_TRACE_HEADERS = ("traceparent", "tracestate", "baggage")
DEFAULT_MAX_RESPONSE_BODY = 100 << 20


class HttpBindingMetadata(ComponentMetadata):
    url: str
    MTLSRootCA: str | None = None
    MTLSClientCert: str | None = None
    MTLSClientKey: str | None = None
    MTLSRenegotiation: str | None = None
    securityToken: str | None = None
    securityTokenHeader: str | None = None
    responseTimeout: Duration | None = None
    maxResponseBodySize: int = DEFAULT_MAX_RESPONSE_BODY
    errorIfNot2XX: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise metadata_error(f"{value!r} is not an http:// or https:// URL")
        return value

    @field_validator("maxResponseBodySize", mode="before")
    @classmethod
    def _size(cls, value: object) -> int:
        text = str(value).strip()
        if text.startswith("-"):
            return 0
        try:
            return parse_quantity(text)
        except ValueError as exc:
            raise metadata_error(str(exc)) from None

    @field_validator("MTLSRenegotiation")
    @classmethod
    def _renegotiation(cls, value: str | None) -> str | None:
        allowed = ("RenegotiateNever", "RenegotiateOnceAsClient", "RenegotiateFreelyAsClient")
        if value and value not in allowed:
            raise metadata_error(f"invalid renegotiation value: {value}")
        return value


def _pem(field: str, value: str) -> str:
    """A PEM given inline, or read from the file it names (Dapr accepts both)."""
    if "-----BEGIN" in value:
        return value
    try:
        with open(value, encoding="utf-8") as file:
            return file.read()
    except OSError as exc:
        raise ComponentInitError(
            f'provided "{field}" value is neither a valid file path nor a valid pem encoded string: {exc}',
            field=field,
        ) from None


def _tls(settings: HttpBindingMetadata) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.MTLSRootCA:
        try:
            context.load_verify_locations(cadata=_pem("MTLSRootCA", settings.MTLSRootCA))
        except (ssl.SSLError, ValueError) as exc:
            raise ComponentInitError(
                f"failed to add root certificate to certpool: {exc}", field="MTLSRootCA"
            ) from None
    if settings.MTLSClientCert and settings.MTLSClientKey:
        cert = _pem("MTLSClientCert", settings.MTLSClientCert)
        key = _pem("MTLSClientKey", settings.MTLSClientKey)
        try:
            _load_client_pair(context, cert, key)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ComponentInitError(
                f"failed to load client certificate: {exc}", field="MTLSClientCert"
            ) from None
    return context


def _load_client_pair(context: ssl.SSLContext, cert: str, key: str) -> None:
    """ssl loads a client pair from files only: written to a private temporary folder, loaded,
    removed."""
    with tempfile.TemporaryDirectory() as folder:
        cert_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
        for path, text in ((cert_path, cert), (key_path, key)):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(text)
        context.load_cert_chain(cert_path, key_path)


class HttpBinding:
    def __init__(self) -> None:
        self._settings: HttpBindingMetadata | None = None
        self._session: aiohttp.ClientSession | None = None
        self._error_if_not_2xx = True

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(HttpBindingMetadata, metadata)
        context = await asyncio.to_thread(_tls, settings)
        self._error_if_not_2xx = (
            settings.errorIfNot2XX is None
            or settings.errorIfNot2XX == ""
            or is_truthy(settings.errorIfNot2XX)
        )
        self._settings = settings
        # Nothing connects here; the session's connector is made on this loop.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context),
            timeout=aiohttp.ClientTimeout(total=None, connect=15),
            auto_decompress=True,
            skip_auto_headers=("User-Agent", "Content-Type"),
        )

    def features(self) -> frozenset[Feature]:
        return _FEATURES

    def operations(self) -> Sequence[str]:
        return _OPERATIONS

    async def invoke(self, request: InvokeRequest) -> InvokeResponse | None:
        settings, session = self._settings, self._session
        if settings is None or session is None:
            raise BackendError("http binding is not initialised or already closed")
        metadata = request.metadata
        url = settings.url
        path = metadata.get("path", "")
        if path:
            url = url.rstrip("/") + "/" + path.lstrip("/")
        error_if_not_2xx = self._error_if_not_2xx
        if metadata.get("errorIfNot2XX"):
            error_if_not_2xx = is_truthy(metadata["errorIfNot2XX"])
        method = request.operation.upper()
        if method == "CREATE":
            method = "POST"
        body = request.data if method in _WITH_BODY else None
        headers: dict[str, str] = {}
        if body is not None and "Content-Type" not in metadata:
            headers["Content-Type"] = "application/json; charset=utf-8"
        if "Accept" not in metadata:
            headers["Accept"] = "application/json; charset=utf-8"
        if settings.securityToken and settings.securityTokenHeader:
            headers[settings.securityTokenHeader] = settings.securityToken
        for key, value in metadata.items():
            if key[:1].isupper() and key[:1].isascii():
                headers[key] = value
        for key in _TRACE_HEADERS:
            if metadata.get(key):
                headers[key] = metadata[key]
        timeout = settings.responseTimeout
        try:
            async with asyncio.timeout(_seconds(timeout)):
                async with session.request(method, url, data=body, headers=headers) as response:
                    data = await _read_capped(response, settings.maxResponseBodySize)
                    answer = dict(_answer_metadata(response))
        except TimeoutError:
            raise BackendError(
                f"{method} {url}: no answer within {_seconds(timeout)}s (responseTimeout)"
            ) from None
        except aiohttp.ClientError as exc:
            raise BackendError(f"{method} {url}: {exc}") from None
        result = InvokeResponse(data, answer)
        if error_if_not_2xx and response.status // 100 != 2:
            raise BindingError(f"received status code {response.status}", result)
        return result

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, cut after ``limit`` bytes as Dapr's io.LimitReader cuts it (0 or less: all of it)."""
    if limit <= 0:
        return await response.read()
    chunks, size = [], 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _seconds(timeout: timedelta | None) -> float | None:
    return timeout.total_seconds() if timeout is not None and timeout.total_seconds() > 0 else None


def _answer_metadata(response: aiohttp.ClientResponse) -> list[tuple[str, str]]:
    try:
        phrase = HTTPStatus(response.status).phrase
    except ValueError:
        phrase = response.reason or ""
    found: dict[str, list[str]] = {}
    for name, value in response.headers.items():
        found.setdefault(_canonical(name), []).append(value)
    return [
        ("statusCode", str(response.status)),
        ("status", f"{response.status} {phrase}".rstrip()),
        *((name, ", ".join(values)) for name, values in found.items()),
    ]


def _canonical(name: str) -> str:
    """Go's canonical header key: ``content-type`` -> ``Content-Type``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))
