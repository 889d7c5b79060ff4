"""file.s3: files as the objects of one bucket on any S3-compatible server (AWS S3, MinIO, Ceph,
moto...), a file name being the object's key. Connection metadata: Dapr's ``bindings.aws.s3`` names
(components/s3_connection.py); ``partSize`` (l8's own, default and least 5Mi, S3's smallest part)
is the size of a multipart upload's parts.

A put reads its stream into one part at a time: a file that ends within the first part is one
PutObject, a longer one a multipart upload whose parts go up while the next one is read (so at
most two parts are held in memory), completed at the end and aborted on any failure. S3 itself
makes the replacement atomic: a reader sees the old object or the new one. Metadata are the
object's user metadata (``x-amz-meta-*``, whose keys S3 lower-cases); a listing carries none (S3
lists none). A delete asks whether the object exists first (S3 deletes a missing key silently).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from components.errors import (
    BackendError,
    FileExists,
    FileNotFound,
    InvalidFileNameError,
    RangeNotSatisfiableError,
)
from components.files.base import (
    ByteRange,
    Feature,
    FileContent,
    FileInfo,
    ListRequest,
    ListResult,
    PutRequest,
)
from components.files.names import name_problem, prefix_problem
from components.files.read_ahead import read_ahead
from components.metadata import decode, parse_quantity
from components.s3_connection import (
    NOT_FOUND_CODES,
    S3ConnectionMetadata,
    connect,
    error_code,
    ping_bucket,
    s3_errors,
)

MIN_PART_SIZE = 5 * 1024 * 1024
"""S3's smallest part (all but the last)."""
READ_SIZE = 1024 * 1024


class S3FileMetadata(S3ConnectionMetadata):
    partSize: Annotated[int, BeforeValidator(parse_quantity), Field(ge=MIN_PART_SIZE, le=5 * 1024**3)] = (
        MIN_PART_SIZE
    )
    """Bytes gathered before a part goes up (a part is this or a chunk more). At most two parts
    are held at once, plus the one being joined: memory per upload is about three parts."""


class S3FileStore:
    def __init__(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._bucket = ""
        self._part_size = 0

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(S3FileMetadata, metadata)
        self._bucket = settings.bucket
        self._part_size = settings.partSize
        try:
            self._client = await connect(settings, self._stack)
        except BaseException:
            await self._stack.aclose()
            raise

    def features(self) -> frozenset[Feature]:
        return frozenset()

    async def put(self, request: PutRequest) -> None:
        key = _key(request.name)
        metadata = dict(request.metadata)
        client, bucket, part_size = self._client, self._bucket, self._part_size
        pieces: list[bytes] = []
        held = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        sending: asyncio.Task[None] | None = None
        number = 0
        condition = {"IfNoneMatch": "*"} if request.create_only else {}
        """S3's conditional write: the object is written only where none is, atomically."""

        async def send(number: int, body: bytes) -> None:
            with s3_errors(f"cannot upload part {number} of {request.name}"):
                answer = await client.upload_part(
                    Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
                )
            parts.append({"PartNumber": number, "ETag": answer["ETag"]})

        try:
            async for chunk in request.chunks:
                pieces.append(chunk)
                held += len(chunk)
                if held < part_size:
                    continue
                if upload_id is None:
                    with s3_errors(f"cannot start uploading {request.name}"):
                        started = await client.create_multipart_upload(
                            Bucket=bucket, Key=key, Metadata=metadata
                        )
                    upload_id = started["UploadId"]
                # Parts may differ in size (all but the last at least 5 MiB): the held chunks go
                # up as one part, joined once, with no copy to cut them at partSize.
                body = b"".join(pieces)
                pieces.clear()
                held = 0
                if sending is not None:
                    await sending  # one part goes up while the next is read
                number += 1
                sending = asyncio.create_task(send(number, body))
                del body
            if upload_id is None:
                with s3_errors(f"cannot write {request.name}"), _create_only(request):
                    await client.put_object(
                        Bucket=bucket, Key=key, Body=b"".join(pieces), Metadata=metadata, **condition
                    )
                return
            if sending is not None:
                await sending
                sending = None
            if pieces:
                await send(number + 1, b"".join(pieces))
                pieces.clear()
            with s3_errors(f"cannot complete uploading {request.name}"), _create_only(request):
                await client.complete_multipart_upload(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": sorted(parts, key=lambda part: part["PartNumber"])},
                    **condition,
                )
        except BaseException:
            if sending is not None and not sending.done():
                sending.cancel()
                await asyncio.wait([sending])
            if upload_id is not None:
                with contextlib.suppress(Exception):
                    await client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise

    async def get(self, name: str, byte_range: ByteRange | None = None) -> FileContent:
        from botocore.exceptions import ClientError

        key = _key(name)
        extra = {"Range": _range_header(byte_range)} if byte_range is not None else {}
        try:
            with s3_errors(f"cannot read {name}"):
                try:
                    answer = await self._client.get_object(Bucket=self._bucket, Key=key, **extra)
                except ClientError as exc:
                    code = error_code(exc)
                    if code in NOT_FOUND_CODES:
                        raise FileNotFound(name) from None
                    if code == "InvalidRange":
                        raise _Unsatisfiable() from None
                    raise
        except _Unsatisfiable:
            raise RangeNotSatisfiableError((await self.stat(name)).size) from None
        body = answer["Body"]
        length = int(answer["ContentLength"])
        span, size = _span(answer.get("ContentRange"), length)
        info = FileInfo(name, size, _utc(answer.get("LastModified")), dict(answer.get("Metadata") or {}))

        chunks = read_ahead(_chunks(body, name))

        async def release() -> None:
            await chunks.aclose()  # stops the reading task, which closes the body
            body.close()

        return FileContent(info, span, chunks, release)

    async def delete(self, name: str) -> None:
        await self.stat(name)
        with s3_errors(f"cannot delete {name}"):
            await self._client.delete_object(Bucket=self._bucket, Key=_key(name))

    async def stat(self, name: str) -> FileInfo:
        from botocore.exceptions import ClientError

        with s3_errors(f"cannot read the meta of {name}"):
            try:
                answer = await self._client.head_object(Bucket=self._bucket, Key=_key(name))
            except ClientError as exc:
                if error_code(exc) in NOT_FOUND_CODES:
                    raise FileNotFound(name) from None
                raise
        return FileInfo(
            name,
            int(answer["ContentLength"]),
            _utc(answer.get("LastModified")),
            dict(answer.get("Metadata") or {}),
        )

    async def list(self, request: ListRequest) -> ListResult:
        problem = prefix_problem(request.prefix)
        if problem is not None:
            raise InvalidFileNameError(problem)
        arguments: dict[str, Any] = {"Bucket": self._bucket, "MaxKeys": request.page_size}
        if request.prefix:
            arguments["Prefix"] = request.prefix
        if request.marker:
            arguments["StartAfter"] = request.marker
        with s3_errors("cannot list the files"):
            answer = await self._client.list_objects_v2(**arguments)
        files = [
            FileInfo(entry["Key"], int(entry["Size"]), _utc(entry.get("LastModified")))
            for entry in answer.get("Contents", [])
        ]
        return ListResult(files, files[-1].name if files else "", bool(answer.get("IsTruncated")))

    async def ping(self) -> None:
        """Health: HEAD on the bucket (components/health.py)."""
        if self._client is None:
            raise BackendError("s3: not connected")
        await ping_bucket(self._client, self._bucket)

    async def close(self) -> None:
        self._client = None
        await self._stack.aclose()


class _Unsatisfiable(Exception):
    pass


def _key(name: str) -> str:
    problem = name_problem(name)
    if problem is not None:
        raise InvalidFileNameError(problem)
    return name


def _range_header(byte_range: ByteRange) -> str:
    if byte_range.first is None:
        return f"bytes=-{byte_range.last}"
    return f"bytes={byte_range.first}-{'' if byte_range.last is None else byte_range.last}"


def _span(content_range: str | None, length: int) -> tuple[tuple[int, int] | None, int]:
    """(served span, whole size) from ``Content-Range: bytes a-b/size``; (None, length) without it."""
    if not content_range:
        return None, length
    served, _, size = content_range.removeprefix("bytes ").partition("/")
    first, _, last = served.partition("-")
    return (int(first), int(last)), int(size)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def _chunks(body: Any, name: str) -> AsyncIterator[bytes]:
    """The object's bytes in blocks of about READ_SIZE: aiohttp hands out what one socket read
    brought (64 KiB or so), and each block sent on costs a turn of the loop."""
    try:
        block = bytearray()
        while True:
            with s3_errors(f"cannot read {name}"):
                data = await body.read(READ_SIZE - len(block))
            if not data:
                break
            block += data
            if len(block) >= READ_SIZE:
                yield bytes(block)
                block.clear()
        if block:
            yield bytes(block)
    finally:
        body.close()


@contextlib.contextmanager
def _create_only(request: PutRequest) -> Iterator[None]:
    """S3's answer to a conditional write that found an object (412 PreconditionFailed) as the
    contract's FileExists."""
    from botocore.exceptions import ClientError

    try:
        yield
    except ClientError as exc:
        if request.create_only and error_code(exc) in ("PreconditionFailed", "412"):
            raise FileExists(request.name) from None
        raise
