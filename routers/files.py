"""The file API: Layotto's File API (PutFile, GetFile, DelFile, GetFileMeta, ListFile) as streaming
HTTP routes under ``/v1.0-alpha1/file/{store}``.

Bodies stream both ways with bounded memory: an upload is read from the ASGI channel chunk by chunk
into the store (``--max-body-size`` does not apply to it: app/middleware.py exempts
:data:`UNCAPPED_UPLOADS`), a download is sent as the store reads it. ``Range: bytes=a-b``, ``a-``
and ``-n`` are answered 206 with Content-Range, an unsatisfiable range 416 with
``Content-Range: bytes */<size>``; a Range header of another form (several ranges, another unit,
bad syntax) is ignored and the whole file sent, as RFC 9110 allows.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import AsyncIterator
from datetime import datetime
from email.utils import format_datetime
from typing import Any

import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from components.errors import ComponentError
from components.files.base import ByteRange, FileContent, FileInfo, ListResult
from routers import schemas
from routers.http import json_response, no_content, query_metadata, services
from routers.table import RouteTable
from services import errors
from services.errors import BodyTooLarge

log = structlog.get_logger(__name__)

routes = RouteTable(tags=["files"])

FILE_PREFIX = "/v1.0-alpha1/file/"
UNCAPPED_UPLOADS = (("PUT", FILE_PREFIX),)
"""(verb, path prefix) of the requests whose bodies --max-body-size does not cap."""
FILE_PATH = "/v1.0-alpha1/file/{storeName}/{name:anykey}"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_OCTETS = "application/octet-stream"
_BINARY = {"type": "string", "format": "binary"}
_TEXT = {"type": "string"}
_META_HEADERS = {
    "Last-Modified": {"schema": _TEXT, "description": "when the file was last written (HTTP date)"},
    "Accept-Ranges": {"schema": _TEXT, "description": "bytes"},
    "metadata.<key>": {"schema": _TEXT, "description": "one header per metadata entry of the file"},
}
_RANGE_HEADER = {"Content-Range": {"schema": _TEXT, "description": "bytes <first>-<last>/<size>"}}

_STORE = {
    400: ["ERR_FILE_STORE_NOT_FOUND", "ERR_MALFORMED_REQUEST"],
    500: ["ERR_FILE_STORE_NOT_CONFIGURED"],
}
_NAME_NOTE = (
    " The name is the rest of the path (slashes included): a relative path that may not be empty, "
    "start with '/', hold '.' or '..' segments, control characters (NUL included) or backslashes "
    "(400 ERR_MALFORMED_REQUEST); file.local also refuses a path through a symlink."
)


def _errors(extra: dict[int, list[str]]) -> dict[int | str, dict[str, Any]]:
    merged = {status: list(codes) for status, codes in _STORE.items()}
    for status, codes in extra.items():
        merged.setdefault(status, []).extend(codes)
    return schemas.errors_doc(merged)


def parse_range(header: str | None) -> ByteRange | None:
    """One byte range of a Range header; None (send the whole file) for any other form."""
    if header is None:
        return None
    found = _RANGE.fullmatch(header.strip())
    if found is None:
        return None
    first, last = found.groups()
    if not first:
        return ByteRange(None, int(last)) if last else None
    if last and int(last) < int(first):
        return None
    return ByteRange(int(first), int(last) if last else None)


def http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


def rfc3339(moment: datetime | None) -> str:
    """proto3 JSON's timestamp form (UTC, ``Z``, milliseconds); "" when unknown."""
    if moment is None:
        return ""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def file_headers(info: FileInfo, length: int) -> list[tuple[bytes, bytes]]:
    """What GET and HEAD answer about a file: its length, media type (guessed from the name),
    last-modified time and metadata (``metadata.<key>``)."""
    media_type = mimetypes.guess_type(info.name, strict=False)[0] or _OCTETS
    headers = [
        (b"content-length", str(length).encode()),
        (b"content-type", media_type.encode()),
        (b"accept-ranges", b"bytes"),
    ]
    if info.last_modified is not None:
        headers.append((b"last-modified", http_date(info.last_modified).encode()))
    for key, value in info.metadata.items():
        # Raw UTF-8 bytes, as Go sends a header value: HTTP headers carry bytes, not text.
        headers.append((f"metadata.{key}".lower().encode(), value.encode()))
    return headers


class FileDownload(Response):
    """A file streamed to the client as the store reads it, released when done (a Starlette
    Response, so the dispatcher sends it like any answer). A store failing mid-stream ends the
    connection early: the status has gone, so the short body is how the client learns it."""

    def __init__(self, content: FileContent) -> None:  # no super(): nothing to render
        self.content = content
        self.status_code = 200 if content.span is None else 206
        self.raw_headers = file_headers(content.info, content.length)
        if content.span is not None:
            first, last = content.span
            self.raw_headers.append((b"content-range", f"bytes {first}-{last}/{content.info.size}".encode()))
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        content = self.content
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            if scope["method"] != "HEAD":
                try:
                    async for chunk in content.chunks:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                except ComponentError as exc:
                    log.warning("file download broken off", file=content.info.name, error=str(exc))
                    return
            await send({"type": "http.response.body", "body": b""})
        finally:
            await content.release()


async def _upload(request: Request, store: str, name: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise errors.put_file_body_read(store, name, "the client went away before the body's end") from None
    except BodyTooLarge as exc:
        raise errors.put_file_body_read(store, name, str(exc)) from None


def list_answer(result: ListResult) -> dict[str, Any]:
    """proto3 JSON of Layotto's ListFileResp (``size`` an int64, so a string), every field present."""
    return {
        "files": [
            {
                "fileName": info.name,
                "size": str(info.size),
                "lastModified": rfc3339(info.last_modified),
                "metadata": dict(info.metadata),
            }
            for info in result.files
        ],
        "marker": result.marker,
        "isTruncated": result.is_truncated,
    }


@routes.put(
    FILE_PATH,
    summary="Put a file",
    description="The body is the file's bytes, streamed to the store whatever its size (not capped by "
    "--max-body-size); the file is replaced atomically (a reader sees the old file or the new one) and "
    "an upload that breaks off leaves the old file. An empty body writes an empty file. Query parameters "
    "metadata.<key>=<value> are the file's metadata (keys are header names; S3 lower-cases them)."
    + _NAME_NOTE,
    openapi_extra=schemas.raw_body("The file's bytes, streamed"),
    status_code=204,
    responses={
        204: {"description": "Stored"},
        **_errors({400: ["ERR_BODY_READ"], 500: ["ERR_PUT_FILE"]}),
    },
    response_class=Response,
)
async def put_file(request: Request, storeName: str, name: str) -> Response:
    service = services(request).files
    await service.put(storeName, name, _upload(request, storeName, name), query_metadata(request))
    return no_content()


@routes.get(
    FILE_PATH,
    summary="Get a file",
    description="The file's bytes, streamed, with Content-Length, Last-Modified, Content-Type guessed from "
    "the name and the file's metadata as metadata.<key> headers. Range: bytes=a-b, a- or -n answers 206 "
    "with Content-Range; a range starting past the end answers 416 with Content-Range: bytes */<size>; a "
    "Range of any other form is ignored (200, the whole file)." + _NAME_NOTE,
    responses={
        200: {"description": "The file", "content": {_OCTETS: {"schema": _BINARY}}, "headers": _META_HEADERS},
        206: {
            "description": "The asked range of the file",
            "content": {_OCTETS: {"schema": _BINARY}},
            "headers": {**_META_HEADERS, **_RANGE_HEADER},
        },
        **_errors(
            {404: ["ERR_FILE_NOT_FOUND"], 416: ["ERR_FILE_RANGE_NOT_SATISFIABLE"], 500: ["ERR_GET_FILE"]}
        ),
    },
    response_class=Response,
)
async def get_file(request: Request, storeName: str, name: str) -> Response:
    byte_range = parse_range(request.headers.get("range"))
    return FileDownload(await services(request).files.get(storeName, name, byte_range))


@routes.route(
    FILE_PATH,
    ["HEAD"],
    summary="Get a file's meta",
    description="No body: the file's size as Content-Length, Last-Modified, Content-Type guessed from the "
    "name and its metadata as metadata.<key> headers (Layotto's GetFileMeta). A missing file answers "
    "404 (with no body, as any answer to HEAD)." + _NAME_NOTE,
    responses={
        200: {"description": "The file exists: its meta in the headers", "headers": _META_HEADERS},
        **_errors({404: ["ERR_FILE_NOT_FOUND"], 500: ["ERR_FILE_META"]}),
    },
    response_class=Response,
)
async def file_meta(request: Request, storeName: str, name: str) -> Response:
    info = await services(request).files.stat(storeName, name)
    response = Response(status_code=200)
    response.raw_headers = file_headers(info, info.size)
    return response


@routes.delete(
    FILE_PATH,
    summary="Delete a file",
    description="Deleting a missing file answers 404 ERR_FILE_NOT_FOUND (Layotto's NOT_FOUND)." + _NAME_NOTE,
    status_code=204,
    responses={
        204: {"description": "Deleted"},
        **_errors({404: ["ERR_FILE_NOT_FOUND"], 500: ["ERR_DELETE_FILE"]}),
    },
    response_class=Response,
)
async def delete_file(request: Request, storeName: str, name: str) -> Response:
    await services(request).files.delete(storeName, name)
    return no_content()


@routes.get(
    "/v1.0-alpha1/file/{storeName}",
    summary="List files",
    description="One page of the files whose names start with prefix (a plain string prefix: dir/ lists a "
    "folder and everything below it), in byte order of their names, at most pageSize of them (1 to "
    "1000, default 100), only names after marker. The answer's marker is the page's last name: pass it "
    "back while isTruncated is true. Layotto's ListFileResp in proto3 JSON (size is an int64, so a "
    "string); S3 lists no metadata.",
    responses={
        200: {"model": schemas.ListFileResponse, "description": "One page of files"},
        **_errors({500: ["ERR_LIST_FILE"]}),
    },
    response_class=Response,
)
async def list_files(
    request: Request,
    storeName: str,
    prefix: str | None = None,
    pageSize: str | None = None,
    marker: str | None = None,
) -> Response:
    result = await services(request).files.list(storeName, prefix, pageSize, marker)
    return json_response(list_answer(result))
