"""Dapr's binary-file RPCs (SetBinaryFileAlpha1, GetBinaryFileAlpha1, DeleteBinaryFileAlpha1)
through a real ``l8 run`` over its file stores (file.local and file.s3), with the ``dapr`` package's
own stubs: a big file in many chunks both ways, overwrite or not, and daprd's errors (an unknown
component, a missing file, a refused name, a chunk out of sequence, a message over
``--max-body-size``, an upload with no first message)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import grpc
import pytest
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import binarystore_pb2, dapr_pb2_grpc

from tests.e2e.process import L8Launcher, L8Process, write_component
from tests.s3_buckets import new_bucket, s3_metadata

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
Set = binarystore_pb2.SetBinaryFileRequestAlpha1


async def local_store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    return "file.local", {"rootPath": str(tmp_path / "files")}


async def s3_store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    server = request.getfixturevalue("s3_server")
    return "file.s3", s3_metadata(server, await new_bucket(server))


@pytest.fixture(params=[local_store, s3_store], ids=["local", "s3"])
async def sidecar(request: pytest.FixtureRequest, l8: L8Launcher, tmp_path: Path) -> L8Process:
    kind, metadata = await request.param(request, tmp_path)
    folder = tmp_path / "resources"
    write_component(folder, "mystore", kind, metadata)
    return await asyncio.to_thread(l8, app_id="binary", resources=[folder], args=["--max-body-size", "2Mi"])


def upload(
    store: str,
    name: str,
    chunks: Iterable[bytes],
    overwrite: bool | None = True,
    seqs: Iterable[int] | None = None,
) -> list[Set]:
    initial = binarystore_pb2.SetBinaryFileRequestInitialAlpha1(component_name=store, file_name=name)
    if overwrite is not None:
        initial.overwrite = overwrite
    messages = [Set(initial_request=initial)]
    chunks = list(chunks)
    for seq, data in zip(seqs if seqs is not None else range(len(chunks)), chunks, strict=True):
        messages.append(Set(payload=common_pb2.StreamPayload(data=data, seq=seq)))
    return messages


async def streamed(messages: list[Set]) -> AsyncIterator[Set]:
    for message in messages:
        yield message


async def download(stub: dapr_pb2_grpc.DaprStub, store: str, name: str) -> tuple[bytes, list[int], int]:
    """The file's bytes, the seq numbers, and the largest chunk."""
    request = binarystore_pb2.GetBinaryFileRequestAlpha1(component_name=store, file_name=name)
    data, seqs, largest = bytearray(), [], 0
    async for answer in stub.GetBinaryFileAlpha1(request):
        data += answer.payload.data
        seqs.append(answer.payload.seq)
        largest = max(largest, len(answer.payload.data))
    return bytes(data), seqs, largest


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await call  # type: ignore[misc]
    return failed.value


async def test_a_big_file_goes_up_and_down_in_chunks(sidecar: L8Process) -> None:
    data = os.urandom(5 * MiB + 123)  # over --max-body-size in all, each message under it
    pieces = [data[i : i + MiB] for i in range(0, len(data), MiB)]
    async with grpc.aio.insecure_channel(sidecar.grpc_address) as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        await stub.SetBinaryFileAlpha1(streamed(upload("mystore", "reports/2026/big.bin", pieces)))
        got, seqs, largest = await download(stub, "mystore", "reports/2026/big.bin")
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
        assert seqs == list(range(len(seqs))) and largest == 32 * 1024

        # overwrite false on an existing file: AlreadyExists, the file as it was
        failed = await refused(
            stub.SetBinaryFileAlpha1(streamed(upload("mystore", "reports/2026/big.bin", [b"x"], False)))
        )
        assert failed.code() == grpc.StatusCode.ALREADY_EXISTS
        assert (await download(stub, "mystore", "reports/2026/big.bin"))[0] == data
        # overwrite unset is false too; a new name is created
        await stub.SetBinaryFileAlpha1(streamed(upload("mystore", "small.bin", [b"a", b"", b"b"], None)))
        assert (await download(stub, "mystore", "small.bin"))[0] == b"ab"
        await stub.SetBinaryFileAlpha1(streamed(upload("mystore", "small.bin", [b"new"], True)))
        assert (await download(stub, "mystore", "small.bin"))[0] == b"new"
        await stub.SetBinaryFileAlpha1(streamed(upload("mystore", "empty.bin", [])))
        assert (await download(stub, "mystore", "empty.bin"))[:2] == (b"", [])

        delete = binarystore_pb2.DeleteBinaryFileRequestAlpha1(
            component_name="mystore", file_name="small.bin"
        )
        await stub.DeleteBinaryFileAlpha1(delete)
        assert (await refused(download(stub, "mystore", "small.bin"))).code() == grpc.StatusCode.NOT_FOUND
        assert (await refused(stub.DeleteBinaryFileAlpha1(delete))).code() == grpc.StatusCode.NOT_FOUND


async def test_daprds_errors(sidecar: L8Process) -> None:
    async with grpc.aio.insecure_channel(sidecar.grpc_address) as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        unknown = binarystore_pb2.DeleteBinaryFileRequestAlpha1(component_name="nope", file_name="x.bin")
        failed = await refused(stub.DeleteBinaryFileAlpha1(unknown))
        assert failed.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "nope" in (failed.details() or "")
        for name in (
            "../x.bin",
            "/x.bin",
            "a\\b.bin",
            ".",
            "..",
            "dir/",
            "a//b",
            "star*.bin",
            "q?.bin",
            "h#.bin",
        ):
            failed = await refused(stub.SetBinaryFileAlpha1(streamed(upload("mystore", name, [b"x"]))))
            assert failed.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        failed = await refused(stub.SetBinaryFileAlpha1(streamed(upload("mystore", "", [b"x"]))))
        assert failed.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (await refused(download(stub, "mystore", "missing.bin"))).code() == grpc.StatusCode.NOT_FOUND

        out_of_order = upload("mystore", "order.bin", [b"second", b"first"], seqs=[1, 0])
        failed = await refused(stub.SetBinaryFileAlpha1(streamed(out_of_order)))
        assert failed.code() == grpc.StatusCode.INTERNAL
        assert "invalid sequence number received: 1 (expected: 0)" in (failed.details() or "")
        assert (await refused(download(stub, "mystore", "order.bin"))).code() == grpc.StatusCode.NOT_FOUND

        twice = upload("mystore", "twice.bin", [b"a"])
        twice.append(twice[0])
        failed = await refused(stub.SetBinaryFileAlpha1(streamed(twice)))
        assert failed.code() == grpc.StatusCode.INTERNAL
        assert "options found in non-leading message" in (failed.details() or "")

        no_options = [Set(payload=common_pb2.StreamPayload(data=b"x", seq=0))]
        assert (
            await refused(stub.SetBinaryFileAlpha1(streamed(no_options)))
        ).code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (await refused(stub.SetBinaryFileAlpha1(streamed([])))).code() == grpc.StatusCode.INTERNAL

        huge = upload("mystore", "huge.bin", [b"x" * (3 * MiB)])  # one message over --max-body-size
        failed = await refused(stub.SetBinaryFileAlpha1(streamed(huge)))
        assert failed.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_of_two_uploads_racing_to_create_a_name_one_wins(sidecar: L8Process) -> None:
    async def slowly(messages: list[Set]) -> AsyncIterator[Set]:
        yield messages[0]
        await asyncio.sleep(0.3)  # both past the check for an existing file before either ends
        for message in messages[1:]:
            yield message

    async with grpc.aio.insecure_channel(sidecar.grpc_address) as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        outcomes = await asyncio.gather(
            *(
                stub.SetBinaryFileAlpha1(slowly(upload("mystore", "raced.bin", [data], False)))
                for data in (b"first", b"second")
            ),
            return_exceptions=True,
        )
        codes = sorted(o.code().name if isinstance(o, grpc.aio.AioRpcError) else "OK" for o in outcomes)
        assert codes == ["ALREADY_EXISTS", "OK"]
        winner = b"first" if not isinstance(outcomes[0], BaseException) else b"second"
        assert (await download(stub, "mystore", "raced.bin"))[0] == winner
