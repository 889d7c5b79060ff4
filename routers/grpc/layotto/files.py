"""Layotto's file RPCs over services/files.py. PutFile is a client stream (the store, name and
metadata come from its first message; an empty stream stores nothing) and GetFile a server
stream of chunks of at most 100 KiB: both pass the bytes through as they come, never holding a
whole file. ListFile, DelFile and GetFileMeta name the file in a ``FileRequest``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import empty_pb2

from routers.files import rfc3339
from routers.grpc.calls import Context, Streaming, Unary, string_map
from routers.grpc.layotto.proto import runtime_pb2
from services.sidecar import Services

CHUNK_SIZE = 100 * 1024
"""Layotto's largest GetFileResponse."""


async def get_file(
    services: Services, request: Any, context: Context
) -> AsyncIterator[runtime_pb2.GetFileResponse]:
    content = await services.files.get(request.store_name, request.name)
    try:
        async for chunk in content.chunks:
            for start in range(0, len(chunk), CHUNK_SIZE):
                yield runtime_pb2.GetFileResponse(data=chunk[start : start + CHUNK_SIZE])
    finally:
        await content.release()


async def put_file(services: Services, requests: AsyncIterator[Any], context: Context) -> empty_pb2.Empty:
    first = await anext(aiter(requests), None)
    if first is None:
        return empty_pb2.Empty()

    async def chunks() -> AsyncIterator[bytes]:
        if first.data:
            yield first.data
        async for request in requests:
            if request.data:
                yield request.data

    await services.files.put(first.store_name, first.name, chunks(), string_map(first.metadata))
    return empty_pb2.Empty()


async def list_file(services: Services, request: Any, context: Context) -> runtime_pb2.ListFileResp:
    named = request.request
    page_size = str(request.page_size) if request.page_size else None
    result = await services.files.list(named.store_name, named.name, page_size, request.marker)
    return runtime_pb2.ListFileResp(
        files=[
            runtime_pb2.FileInfo(
                file_name=info.name,
                size=info.size,
                last_modified=rfc3339(info.last_modified),
                metadata=dict(info.metadata),
            )
            for info in result.files
        ],
        marker=result.marker,
        is_truncated=result.is_truncated,
    )


async def del_file(services: Services, request: Any, context: Context) -> empty_pb2.Empty:
    await services.files.delete(request.request.store_name, request.request.name)
    return empty_pb2.Empty()


async def get_file_meta(
    services: Services, request: Any, context: Context
) -> runtime_pb2.GetFileMetaResponse:
    info = await services.files.stat(request.request.store_name, request.request.name)
    metadata = {key: runtime_pb2.FileMetaValue(value=[value]) for key, value in info.metadata.items()}
    return runtime_pb2.GetFileMetaResponse(
        size=info.size,
        last_modified=rfc3339(info.last_modified),
        response=runtime_pb2.FileMeta(metadata=metadata),
    )


RPCS: dict[str, Unary] = {
    "PutFile": put_file,
    "ListFile": list_file,
    "DelFile": del_file,
    "GetFileMeta": get_file_meta,
}
STREAMS: dict[str, Streaming] = {"GetFile": get_file}
