"""Dapr's binary-file RPCs (``SetBinaryFileAlpha1``, ``GetBinaryFileAlpha1``,
``DeleteBinaryFileAlpha1``) over services/binary_files.py, as daprd's pkg/api/grpc serves them:

- Set is a client stream: the first message holds ``initial_request`` (component, file name,
  ``overwrite``; waited for 5 s, then INVALID_ARGUMENT), the next ones ``payload`` chunks whose
  ``seq`` counts from 0; a chunk out of sequence or a second ``initial_request`` fails the upload
  (INTERNAL), the old file kept. Chunks go to the store as they come; each message is capped by
  ``--max-body-size`` (grpcio's RESOURCE_EXHAUSTED), the file is not;
- Get is a server stream of ``payload`` chunks of at most 32 KiB (daprd's read buffer), ``seq``
  from 0, read from the store as they are sent;
- Delete answers an empty message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import binarystore_pb2

from routers.grpc.calls import Context, Streaming, Unary
from services import errors
from services.binary_files import BinaryFiles
from services.sidecar import Services

CHUNK_SIZE = 32 * 1024
"""daprd's read buffer: the largest chunk GetBinaryFileAlpha1 sends."""
FIRST_MESSAGE_TIMEOUT = 5.0
"""How long daprd waits for an upload's first message."""


async def set_binary_file(
    services: Services, requests: AsyncIterator[Any], context: Context
) -> binarystore_pb2.SetBinaryFileResponseAlpha1:
    source = aiter(requests)
    try:
        first = await asyncio.wait_for(anext(source, None), FIRST_MESSAGE_TIMEOUT)
    except TimeoutError:
        raise errors.bad_request("error waiting for first message: context deadline exceeded") from None
    if first is None:
        raise errors.binary_set_failed("", "", "error receiving the first message: EOF")
    if not first.HasField("initial_request"):
        raise errors.bad_request("first message does not contain the required options")
    options = first.initial_request
    if not options.component_name:
        raise errors.bad_request("missing property 'componentName' in the options message")
    store, name = options.component_name, options.file_name
    files = BinaryFiles(services.files)
    files.check(store, name)

    async def chunks() -> AsyncIterator[bytes]:
        expected = 0
        async for request in source:
            if request.HasField("initial_request"):
                raise errors.binary_set_failed(store, name, "options found in non-leading message")
            if not request.HasField("payload"):
                continue
            seq = request.payload.seq
            if seq != expected:
                raise errors.binary_set_failed(
                    store, name, f"invalid sequence number received: {seq} (expected: {expected})"
                )
            expected += 1
            if request.payload.data:
                yield request.payload.data

    await files.set(store, name, options.overwrite, chunks())
    return binarystore_pb2.SetBinaryFileResponseAlpha1()


async def get_binary_file(
    services: Services, request: Any, context: Context
) -> AsyncIterator[binarystore_pb2.GetBinaryFileResponseAlpha1]:
    content = await BinaryFiles(services.files).get(request.component_name, request.file_name)
    seq = 0
    try:
        async for chunk in content.chunks:
            for start in range(0, len(chunk), CHUNK_SIZE):
                payload = common_pb2.StreamPayload(data=chunk[start : start + CHUNK_SIZE], seq=seq)
                yield binarystore_pb2.GetBinaryFileResponseAlpha1(payload=payload)
                seq += 1
    finally:
        await content.release()


async def delete_binary_file(
    services: Services, request: Any, context: Context
) -> binarystore_pb2.DeleteBinaryFileResponseAlpha1:
    await BinaryFiles(services.files).delete(request.component_name, request.file_name)
    return binarystore_pb2.DeleteBinaryFileResponseAlpha1()


RPCS: dict[str, Unary] = {
    "SetBinaryFileAlpha1": set_binary_file,
    "DeleteBinaryFileAlpha1": delete_binary_file,
}
STREAMS: dict[str, Streaming] = {"GetBinaryFileAlpha1": get_binary_file}
