"""One object of the aws.s3 binding's bucket read, written or located, shared by its single and
bulk operations (components/bindings/s3.py, components/bindings/s3_bulk.py)."""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping
from typing import Any

from components.bindings.base import BindingError
from components.bindings.s3_shapes import object_location
from components.s3_connection import error_code, s3_errors

_LINE_BREAK = re.compile(rb"[\r\n]")


def decode_base64(data: bytes | memoryview) -> bytes:
    """Go's StdEncoding decoder: padding required, CR and LF skipped. Decoded straight from the
    given bytes or view (``base64.b64decode`` would copy them first)."""
    if _LINE_BREAK.search(data):
        data = bytes(data).replace(b"\r", b"").replace(b"\n", b"")
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise BindingError(f"s3 binding error: uploading failed: illegal base64 data: {exc}") from None


async def read_object(client: Any, bucket: str, key: str) -> bytes:
    """The object's bytes, read into one ``bytes``; BindingError ``object not found`` when there is
    none (Dapr's text)."""
    from botocore.exceptions import ClientError

    with s3_errors("s3 binding error: error downloading S3 object"):
        try:
            answer = await client.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) == "NoSuchKey":
                raise BindingError("object not found") from None
            raise
        body = answer["Body"]
        try:
            data: bytes = await body.read()
        finally:
            body.close()
    return data


async def upload(client: Any, arguments: Mapping[str, Any], data: bytes) -> Mapping[str, Any]:
    """PutObject of ``data`` (sent as it is, no copy) with ``arguments`` (Bucket, Key...)."""
    with s3_errors("s3 binding error: uploading failed"):
        answer: Mapping[str, Any] = await client.put_object(Body=data, **arguments)
    return answer


def location(client: Any, bucket: str, key: str, path_style: bool) -> str:
    """The object's URL on the client's endpoint, as the SDK's uploader reports it."""
    return object_location(str(client.meta.endpoint_url), bucket, key, path_style)
