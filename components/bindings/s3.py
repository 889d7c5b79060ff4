"""bindings.aws.s3: an output binding on one bucket of AWS S3 or any S3-compatible server (MinIO,
Ceph, moto...), with the metadata, operations and answers of Dapr's binding.

Metadata: the connection fields every l8 S3 component reads (``bucket`` required, ``region``,
``endpoint``, ``accessKey``, ``secretKey``, ``sessionToken``, ``forcePathStyle``, ``disableSSL``,
``insecureSSL``; components/s3_connection.py, which proves the bucket at start-up), and
``decodeBase64``, ``encodeBase64``, ``storageClass``, ``presignTTL`` as defaults that request
metadata of the same names overrides (a request's booleans by Dapr's ``IsTruthy``). Dapr's
``filePath`` (upload from, or download to, the sidecar's own disk) is refused: l8 never lets an API
call read or write a file of the sidecar's host.

Operations (request metadata ``key`` names the object):

``create``
    Stores the data under ``key`` (a random UUID without it). The data is unquoted as Dapr does (a
    JSON string stored as its text), then base64-decoded with ``decodeBase64``; ``Content-Type``,
    ``storageClass`` and ``tags`` (``k1=v1,k2=v2``) request metadata go with it. Answers
    ``{"location", "versionID", "presignURL"?}`` (``presignURL`` with ``presignTTL``) and the
    metadata ``key``.
``get``
    The object's bytes (base64 with ``encodeBase64``); a missing object is ``object not found``.
``delete``
    Deletes the object (S3 answers a missing one as deleted); nothing to answer.
``list``
    Data ``{"maxResults", "prefix", "marker", "delimiter"}`` (maxResults 1000 below 1); answers
    S3's ListObjects output as Dapr's Go SDK marshals it (components/bindings/s3_shapes.py).
``presign``
    A GET URL for ``key`` valid ``presignTTL`` (Go's duration: ``15m``): ``{"presignURL"}``.
``bulkGet``, ``bulkCreate``, ``bulkDelete``
    Several objects in one call (components/bindings/s3_bulk.py).

Memory: a create makes one copy of the data beside the request's own (and the S3 client holds
one more while sending): a JSON string without escapes (base64 always is) is read in place, cut
out of its quotes or base64-decoded straight from the request. A get holds the object once, plus
aiohttp's chunks while it joins them (and the base64 text with ``encodeBase64``, the raw bytes
being dropped once encoded). tests/components/test_aws_s3_binding.py measures both.
"""

from __future__ import annotations

import base64
import contextlib
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from pydantic import field_validator

from components.bindings import s3_bulk
from components.bindings.base import (
    CREATE,
    DELETE,
    GET,
    LIST,
    BindingError,
    Feature,
    InvokeRequest,
    InvokeResponse,
)
from components.bindings.s3_objects import decode_base64, location, read_object, upload
from components.bindings.s3_shapes import go_duration, list_objects_output, string_body, tagging, unquote
from components.errors import BackendError
from components.metadata import GoBool, decode, is_truthy, metadata_error
from components.s3_connection import S3ConnectionMetadata, connect, error_code, ping_bucket, s3_errors

PRESIGN = "presign"
_OPERATIONS = (CREATE, GET, DELETE, LIST, PRESIGN, s3_bulk.BULK_GET, s3_bulk.BULK_CREATE, s3_bulk.BULK_DELETE)
_FEATURES = frozenset({Feature.OUTPUT_BINDING})
KEY = "key"
DEFAULT_MAX_RESULTS = 1000
_INT32_MAX = 2**31 - 1
_NO_FILE_PATH = (
    "filePath is not supported: l8 does not read or write files on the sidecar's host, send the data instead"
)


class S3BindingMetadata(S3ConnectionMetadata):
    decodeBase64: GoBool = False
    encodeBase64: GoBool = False
    storageClass: str = ""
    presignTTL: str = ""
    filePath: str = ""

    @field_validator("presignTTL")
    @classmethod
    def _ttl(cls, value: str) -> str:
        if value:
            try:
                go_duration(value)
            except ValueError as exc:
                raise metadata_error(str(exc)) from None
        return value

    @field_validator("filePath")
    @classmethod
    def _file_path(cls, value: str) -> str:
        if value:
            raise metadata_error(_NO_FILE_PATH)
        return value


class Options:
    """The component's defaults merged with one request's metadata, as Dapr's
    ``mergeWithRequestMetadata`` does (an empty request value keeps the default)."""

    __slots__ = ("decode_base64", "encode_base64", "presign_ttl", "storage_class")

    def __init__(self, settings: S3BindingMetadata, metadata: Mapping[str, str]) -> None:
        if metadata.get("filePath"):
            raise BindingError(f"s3 binding error: {_NO_FILE_PATH}")
        decode_text = metadata.get("decodeBase64", "")
        encode_text = metadata.get("encodeBase64", "")
        self.decode_base64 = is_truthy(decode_text) if decode_text else settings.decodeBase64
        self.encode_base64 = is_truthy(encode_text) if encode_text else settings.encodeBase64
        self.presign_ttl = metadata.get("presignTTL") or settings.presignTTL
        self.storage_class = metadata.get("storageClass") or settings.storageClass


class S3Binding:
    def __init__(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._settings: S3BindingMetadata | None = None

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(S3BindingMetadata, metadata)
        try:
            self._client = await connect(settings, self._stack)
        except BaseException:
            await self._stack.aclose()
            raise
        self._settings = settings

    def features(self) -> frozenset[Feature]:
        return _FEATURES

    def operations(self) -> Sequence[str]:
        return _OPERATIONS

    async def invoke(self, request: InvokeRequest) -> InvokeResponse | None:
        client, settings = self._client, self._settings
        if client is None or settings is None:
            raise BackendError("s3 binding is not initialised or already closed")
        operation = request.operation
        if operation == CREATE:
            return await self._create(client, settings, request)
        if operation == GET:
            return await self._get(client, settings, request)
        if operation == DELETE:
            await self._delete(client, settings, request)
            return None
        if operation == LIST:
            return await self._list(client, settings, request)
        if operation == PRESIGN:
            return await self._presign(client, settings, request)
        if operation in s3_bulk.OPERATIONS:
            options = Options(settings, request.metadata)
            bulk = s3_bulk.OPERATIONS[operation]
            return await bulk(client, settings.bucket, options, request.data, settings.forcePathStyle)
        raise BindingError(f"s3 binding error: unsupported operation {operation}")

    async def _create(
        self, client: Any, settings: S3BindingMetadata, request: InvokeRequest
    ) -> InvokeResponse:
        options = Options(settings, request.metadata)
        key = request.metadata.get(KEY) or str(uuid.uuid4())
        arguments: dict[str, Any] = {"Bucket": settings.bucket, "Key": key}
        content_type = request.metadata.get("Content-Type", "").strip()
        if content_type:
            arguments["ContentType"] = content_type
        if options.storage_class:
            arguments["StorageClass"] = options.storage_class
        if "tags" in request.metadata:
            try:
                tags = tagging(request.metadata["tags"])
            except ValueError as exc:
                raise BindingError(f"s3 binding error: parsing tags falied error: {exc}") from None
            if tags:
                arguments["Tagging"] = tags
        # A JSON string without escapes (base64 always) is used in place: one copy of a large body.
        view = string_body(request.data)
        if options.decode_base64:
            data = decode_base64(view if view is not None else unquote(request.data))
        else:
            data = view.tobytes() if view is not None else unquote(request.data)
        del view
        answer = await upload(client, arguments, data)
        body: dict[str, Any] = {
            "location": location(client, settings.bucket, key, settings.forcePathStyle),
            "versionID": answer.get("VersionId"),
        }
        if options.presign_ttl:
            body["presignURL"] = await _presign_url(client, settings.bucket, key, options.presign_ttl)
        return InvokeResponse(orjson.dumps(body), {KEY: key})

    async def _get(self, client: Any, settings: S3BindingMetadata, request: InvokeRequest) -> InvokeResponse:
        options = Options(settings, request.metadata)
        data = await read_object(client, settings.bucket, _required_key(request.metadata))
        if options.encode_base64:
            data = base64.b64encode(data)
        return InvokeResponse(data)

    async def _delete(self, client: Any, settings: S3BindingMetadata, request: InvokeRequest) -> None:
        from botocore.exceptions import ClientError

        key = _required_key(request.metadata)
        with s3_errors("s3 binding error: delete operation failed"):
            try:
                await client.delete_object(Bucket=settings.bucket, Key=key)
            except ClientError as exc:
                if error_code(exc) == "NoSuchKey":
                    raise BindingError("object not found") from None
                raise

    async def _list(self, client: Any, settings: S3BindingMetadata, request: InvokeRequest) -> InvokeResponse:
        payload = _list_payload(request.data)
        with s3_errors("s3 binding error: list operation failed"):
            answer = await client.list_objects(Bucket=settings.bucket, **payload)
        return InvokeResponse(list_objects_output(answer))

    async def _presign(
        self, client: Any, settings: S3BindingMetadata, request: InvokeRequest
    ) -> InvokeResponse:
        options = Options(settings, request.metadata)
        key = _required_key(request.metadata)
        if not options.presign_ttl:
            raise BindingError("s3 binding error: required metadata 'presignTTL' missing")
        url = await _presign_url(client, settings.bucket, key, options.presign_ttl)
        return InvokeResponse(orjson.dumps({"presignURL": url}))

    async def ping(self) -> None:
        """Health: HEAD on the bucket (components/health.py)."""
        client, settings = self._client, self._settings
        if client is None or settings is None:
            raise BackendError("s3: not connected")
        await ping_bucket(client, settings.bucket)

    async def close(self) -> None:
        self._client = None
        self._settings = None
        await self._stack.aclose()


async def _presign_url(client: Any, bucket: str, key: str, ttl: str) -> str:
    try:
        seconds = go_duration(ttl)
    except ValueError as exc:
        raise BindingError(f"s3 binding error: cannot parse duration {ttl}: {exc}") from None
    with s3_errors("s3 binding error: failed to presign URL"):
        url: str = await client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=int(seconds)
        )
    return url


def _required_key(metadata: Mapping[str, str]) -> str:
    key = metadata.get(KEY, "")
    if not key:
        raise BindingError(f"s3 binding error: required metadata '{KEY}' missing")
    return key


def _list_payload(data: bytes) -> dict[str, Any]:
    """ListObjects' arguments from Dapr's ``listPayload`` (Go's decoder: names match in any case,
    ``null`` is nothing)."""
    fields = s3_bulk.json_object(data, "s3 binding (List Operation) - unable to parse Data property - ")
    max_results = fields.get("maxresults")
    texts = {name: fields.get(name) for name in ("marker", "prefix", "delimiter")}
    problem = next(
        (name for name, value in texts.items() if value is not None and not isinstance(value, str)), None
    )
    if problem or not (
        max_results is None or (isinstance(max_results, int) and not isinstance(max_results, bool))
    ):
        raise BindingError(
            "s3 binding (List Operation) - unable to parse Data property - "
            f"json: cannot unmarshal into field {problem or 'maxResults'} of type listPayload"
        )
    if max_results is not None and not -(2**31) <= max_results <= _INT32_MAX:
        raise BindingError(
            "s3 binding (List Operation) - unable to parse Data property - "
            f"json: cannot unmarshal number {max_results} into Go struct field "
            "listPayload.maxResults of type int32"
        )
    return {
        "MaxKeys": max_results if max_results is not None and max_results >= 1 else DEFAULT_MAX_RESULTS,
        "Marker": texts["marker"] or "",
        "Prefix": texts["prefix"] or "",
        "Delimiter": texts["delimiter"] or "",
    }
