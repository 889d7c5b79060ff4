"""Every file store against the contract in components/files/base.py.

What is specific to a backend lives in BACKENDS only: its component type, its metadata (a folder of
the test's own for file.local; a bucket of the test's own on the session's moto server for
file.s3, with the smallest multipart part so a 12 MiB file is a multipart upload), the metadata
mistakes start-up must name, and how to look for what a failed put may leave behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from components import registry
from components.errors import (
    ComponentInitError,
    FileExists,
    FileNotFound,
    InvalidFileNameError,
    MetadataError,
    RangeNotSatisfiableError,
)
from components.files.base import ByteRange, FileContent, ListRequest, PutRequest
from tests.s3_buckets import new_bucket, s3_client, s3_metadata
from tests.servers import LOOPBACK, free_port

Metadata = Callable[[pytest.FixtureRequest], Awaitable[dict[str, str]]]
Leftovers = Callable[[pytest.FixtureRequest, dict[str, str]], Awaitable[list[str]]]
"""What a failed put left in the storage besides the files (temporary files, open uploads)."""

MiB = 1024 * 1024


async def _local(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"rootPath": str(request.getfixturevalue("tmp_path") / "files")}


async def _s3(request: pytest.FixtureRequest) -> dict[str, str]:
    server = request.getfixturevalue("s3_server")
    return s3_metadata(server, await new_bucket(server), partSize="5Mi")


async def _local_leftovers(request: pytest.FixtureRequest, metadata: dict[str, str]) -> list[str]:
    root = Path(metadata["rootPath"])

    def temporary_files() -> list[str]:
        return sorted(str(path.relative_to(root)) for path in root.rglob(".l8-upload-*"))

    return await asyncio.to_thread(temporary_files)


async def _s3_leftovers(request: pytest.FixtureRequest, metadata: dict[str, str]) -> list[str]:
    async with s3_client(request.getfixturevalue("s3_server")) as client:
        answer = await client.list_multipart_uploads(Bucket=metadata["bucket"])
    return [upload["Key"] for upload in answer.get("Uploads", [])]


async def _s3_missing_bucket(request: pytest.FixtureRequest) -> dict[str, str]:
    return s3_metadata(request.getfixturevalue("s3_server"), "l8-no-such-bucket")


async def _s3_closed_port(request: pytest.FixtureRequest) -> dict[str, str]:
    return s3_metadata(
        request.getfixturevalue("s3_server"), "l8-any", endpoint=f"http://{LOOPBACK}:{free_port()}"
    )


@dataclass(frozen=True, slots=True)
class Backend:
    id: str
    type: str
    metadata: Metadata
    leftovers: Leftovers
    bad_metadata: tuple[tuple[str, str | None, str], ...] = ()
    """(field, value, field named by the MetadataError); value None: the field left out."""
    unusable: tuple[tuple[str, Metadata, str], ...] = ()
    """(case, metadata, field named by the ComponentInitError)."""


BACKENDS = (
    Backend(
        "local",
        "file.local",
        _local,
        _local_leftovers,
        bad_metadata=(("rootPath", None, "rootPath"), ("rootPath", " ", "rootPath")),
        unusable=(("root-is-a-file", lambda request: _root_is_a_file(request), "rootPath"),),
    ),
    Backend(
        "s3",
        "file.s3",
        _s3,
        _s3_leftovers,
        bad_metadata=(
            ("bucket", None, "bucket"),
            ("bucket", "ab", "bucket"),
            ("partSize", "1Mi", "partSize"),
            ("partSize", "big", "partSize"),
            ("forcePathStyle", "maybe", "forcePathStyle"),
        ),
        unusable=(
            ("missing-bucket", _s3_missing_bucket, "bucket"),
            ("closed-port", _s3_closed_port, "endpoint"),
        ),
    ),
)


async def _root_is_a_file(request: pytest.FixtureRequest) -> dict[str, str]:
    path = request.getfixturevalue("tmp_path") / "a-file"
    path.write_bytes(b"")
    return {"rootPath": str(path)}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    if "bad_field" in metafunc.fixturenames:
        cases = [
            pytest.param(b, field, value, named, id=f"{b.id}-{field}-{'missing' if value is None else value}")
            for b in BACKENDS
            for field, value, named in b.bad_metadata
        ]
        metafunc.parametrize(("backend", "bad_field", "bad_value", "named_field"), cases)
        return
    if "unusable" in metafunc.fixturenames:
        cases = [pytest.param(b, case, id=f"{b.id}-{case[0]}") for b in BACKENDS for case in b.unusable]
        metafunc.parametrize(("backend", "unusable"), cases)
        return
    metafunc.parametrize("backend", [pytest.param(b, id=b.id) for b in BACKENDS])


@dataclass(slots=True)
class Started:
    store: Any
    metadata: dict[str, str]


@pytest.fixture
async def started(backend: Backend, request: pytest.FixtureRequest) -> AsyncIterator[Started]:
    metadata = await backend.metadata(request)
    instance = registry.FILES.create(backend.type)
    await instance.init(metadata)
    try:
        yield Started(instance, metadata)
    finally:
        await instance.close()


@pytest.fixture
def store(started: Started) -> Any:
    return started.store


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await asyncio.sleep(0)
        yield chunk


async def put(store: Any, name: str, *chunks: bytes, metadata: dict[str, str] | None = None) -> None:
    await store.put(PutRequest(name, stream(*chunks), metadata or {}))


async def read(content: FileContent) -> bytes:
    try:
        return b"".join([chunk async for chunk in content.chunks])
    finally:
        await content.release()


async def get(store: Any, name: str, byte_range: ByteRange | None = None) -> bytes:
    return await read(await store.get(name, byte_range))


# -- put, get, stat, delete ------------------------------------------------------------------------


async def test_a_put_file_reads_back_with_its_size_time_and_metadata(store: Any) -> None:
    before = datetime.now(UTC) - timedelta(seconds=2)
    await put(store, "docs/report.csv", b"a,b\n", b"1,2\n", metadata={"owner": "ops", "kind": "csv"})
    content = await store.get("docs/report.csv")
    assert content.span is None and content.length == 8
    assert content.info.size == 8
    assert dict(content.info.metadata) == {"owner": "ops", "kind": "csv"}
    assert await read(content) == b"a,b\n1,2\n"
    info = await store.stat("docs/report.csv")
    assert (info.name, info.size, dict(info.metadata)) == (
        "docs/report.csv",
        8,
        {"owner": "ops", "kind": "csv"},
    )
    assert info.last_modified is not None and before <= info.last_modified <= datetime.now(UTC) + timedelta(
        seconds=2
    )


async def test_a_put_replaces_the_file_and_its_metadata(store: Any) -> None:
    await put(store, "f.txt", b"old content, longer", metadata={"a": "1"})
    await put(store, "f.txt", b"new", metadata={"b": "2"})
    assert await get(store, "f.txt") == b"new"
    info = await store.stat("f.txt")
    assert (info.size, dict(info.metadata)) == (3, {"b": "2"})


@pytest.mark.parametrize("size", [3, 6 * MiB], ids=["small", "multipart"])
async def test_a_create_only_put_never_replaces_a_file(store: Any, size: int) -> None:
    new = os.urandom(size)
    await store.put(PutRequest("created.bin", stream(new), {}, create_only=True))  # none there: written
    assert await get(store, "created.bin") == new
    with pytest.raises(FileExists):
        await store.put(PutRequest("created.bin", stream(b"other"), {}, create_only=True))
    assert await get(store, "created.bin") == new  # the old file, whole


async def test_of_two_create_only_puts_racing_for_a_name_one_wins(store: Any) -> None:
    async def slow(data: bytes) -> AsyncIterator[bytes]:
        await asyncio.sleep(0.05)  # both are under way before either completes
        yield data

    outcomes = await asyncio.gather(
        *(store.put(PutRequest("raced.bin", slow(data), {}, create_only=True)) for data in (b"a", b"b")),
        return_exceptions=True,
    )
    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["FileExists", "NoneType"]
    winner = b"a" if outcomes[0] is None else b"b"
    assert await get(store, "raced.bin") == winner
    assert [info.name for info in (await store.list(ListRequest("raced", 10, ""))).files] == ["raced.bin"]


async def test_an_empty_stream_writes_an_empty_file(store: Any) -> None:
    await put(store, "empty")
    assert await get(store, "empty") == b""
    assert (await store.stat("empty")).size == 0
    await put(store, "was-full", b"x")
    await put(store, "was-full")
    assert await get(store, "was-full") == b""


async def test_a_missing_file_is_not_found_by_get_stat_and_delete(store: Any) -> None:
    for operation in (store.get, store.stat, store.delete):
        with pytest.raises(FileNotFound):
            await operation("nowhere/missing.txt")


async def test_a_folder_is_not_a_file(store: Any) -> None:
    await put(store, "folder/inside.txt", b"x")
    for operation in (store.get, store.stat, store.delete):
        with pytest.raises(FileNotFound):
            await operation("folder")
    assert await get(store, "folder/inside.txt") == b"x"


async def test_a_deleted_file_is_gone(store: Any) -> None:
    await put(store, "gone.bin", b"x")
    await store.delete("gone.bin")
    with pytest.raises(FileNotFound):
        await store.get("gone.bin")
    with pytest.raises(FileNotFound):
        await store.delete("gone.bin")


async def test_names_keep_spaces_unicode_and_odd_characters(store: Any) -> None:
    names = ["with space.txt", "über/ß €.txt", "a%2Fb", "x:y;z=1&q", "dot.in.name..txt"]
    for index, name in enumerate(names):
        await put(store, name, str(index).encode())
    for index, name in enumerate(names):
        assert await get(store, name) == str(index).encode()
    listed = [f.name for f in (await store.list(ListRequest(page_size=100))).files]
    assert listed == sorted(names)


@pytest.mark.parametrize(
    "name", ["../escape", "/absolute", "a/../../b", "nul\x00byte", "back\\slash", "", "a//b"]
)
async def test_names_that_could_leave_the_root_are_refused(store: Any, name: str) -> None:
    for operation in (store.get, store.stat, store.delete):
        with pytest.raises(InvalidFileNameError):
            await operation(name)
    with pytest.raises(InvalidFileNameError):
        await put(store, name, b"x")


async def test_content_released_unread_frees_the_file(store: Any) -> None:
    await put(store, "unread", b"x" * 1000)
    for _ in range(50):
        await (await store.get("unread")).release()
    assert await get(store, "unread") == b"x" * 1000


# -- ranges ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "last", "span"),
    [
        (0, 0, (0, 0)),
        (2, 5, (2, 5)),
        (7, None, (7, 9)),
        (None, 3, (7, 9)),
        (5, 100, (5, 9)),
        (None, 50, (0, 9)),
    ],
)
async def test_a_range_serves_those_bytes(
    store: Any, first: int | None, last: int | None, span: tuple[int, int]
) -> None:
    await put(store, "digits", b"0123456789")
    content = await store.get("digits", ByteRange(first, last))
    assert content.span == span
    assert content.info.size == 10
    assert content.length == span[1] - span[0] + 1
    assert await read(content) == b"0123456789"[span[0] : span[1] + 1]


@pytest.mark.parametrize(("first", "last"), [(10, None), (10, 20), (99, None), (None, 0)])
async def test_a_range_past_the_end_is_not_satisfiable(
    store: Any, first: int | None, last: int | None
) -> None:
    await put(store, "digits", b"0123456789")
    with pytest.raises(RangeNotSatisfiableError) as raised:
        await store.get("digits", ByteRange(first, last))
    assert raised.value.size == 10


# -- big files, failures, concurrent readers -------------------------------------------------------


async def test_a_file_of_many_chunks_and_parts_reads_back_whole(store: Any) -> None:
    # 12 MiB + 3 bytes in odd-sized chunks: three parts on S3 (5 MiB, 5 MiB, the rest).
    chunks = [os.urandom(65_521) for _ in range(192)] + [os.urandom(12 * MiB + 3 - 192 * 65_521)]
    await put(store, "big/blob.bin", *chunks)
    whole = b"".join(chunks)
    content = await store.get("big/blob.bin")
    assert content.info.size == len(whole)
    digest = hashlib.sha256()
    async for chunk in content.chunks:
        assert len(chunk) <= 8 * MiB
        digest.update(chunk)
    await content.release()
    assert digest.hexdigest() == hashlib.sha256(whole).hexdigest()
    middle = await get(store, "big/blob.bin", ByteRange(6 * MiB - 5, 6 * MiB + 4))
    assert middle == whole[6 * MiB - 5 : 6 * MiB + 5]


class Broken(Exception):
    pass


@pytest.mark.parametrize("size", [1000, 11 * MiB], ids=["small", "multipart"])
async def test_a_put_that_fails_mid_stream_leaves_the_old_file_and_nothing_else(
    backend: Backend, started: Started, request: pytest.FixtureRequest, size: int
) -> None:
    store = started.store
    await put(store, "kept.txt", b"the old file", metadata={"v": "1"})

    async def failing() -> AsyncIterator[bytes]:
        yield b"n" * size
        raise Broken("the client went away")

    with pytest.raises(Broken):
        await store.put(PutRequest("kept.txt", failing(), {"v": "2"}))
    with pytest.raises(Broken):
        await store.put(PutRequest("never.txt", failing(), {}))
    assert await get(store, "kept.txt") == b"the old file"
    assert dict((await store.stat("kept.txt")).metadata) == {"v": "1"}
    with pytest.raises(FileNotFound):
        await store.stat("never.txt")
    assert await backend.leftovers(request, started.metadata) == []
    assert [f.name for f in (await store.list(ListRequest())).files] == ["kept.txt"]


async def test_a_cancelled_put_leaves_the_old_file(
    backend: Backend, started: Started, request: pytest.FixtureRequest
) -> None:
    store = started.store
    await put(store, "kept.txt", b"the old file")
    waiting = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield b"partial"
        waiting.set()
        await asyncio.sleep(3600)
        yield b"never"

    task = asyncio.create_task(store.put(PutRequest("kept.txt", stalled(), {})))
    await waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await get(store, "kept.txt") == b"the old file"
    assert await backend.leftovers(request, started.metadata) == []


async def test_readers_see_the_old_file_or_the_new_one_never_a_mix(store: Any) -> None:
    size = 3 * MiB
    await put(store, "swapped", b"A" * size)

    async def writer() -> None:
        for letter in b"BCDEF":
            await put(store, "swapped", *[bytes([letter]) * (size // 4)] * 4)

    async def reader() -> set[bytes]:
        seen = set()
        for _ in range(6):
            data = await get(store, "swapped")
            assert len(data) == size
            assert len(set(data)) == 1, "a read mixed two versions of the file"
            seen.add(data[:1])
        return seen

    results = await asyncio.gather(writer(), reader(), reader())
    assert set().union(*results[1:]) <= {bytes([letter]) for letter in b"ABCDEF"}
    assert await get(store, "swapped") == b"F" * size


async def test_an_opened_download_is_not_disturbed_by_a_replacement(store: Any) -> None:
    await put(store, "doc", b"1" * (2 * MiB))
    content = await store.get("doc")
    await put(store, "doc", b"2" * (2 * MiB))
    data = await read(content)
    assert len(data) == 2 * MiB and len(set(data)) == 1


# -- list ------------------------------------------------------------------------------------------


async def test_list_answers_files_under_a_prefix_in_name_order(store: Any) -> None:
    for name in ["b.txt", "a/2.txt", "a/1.txt", "a/sub/3.txt", "ab.txt", "c/4.txt"]:
        await put(store, name, name.encode())
    everything = await store.list(ListRequest())
    assert [f.name for f in everything.files] == [
        "a/1.txt",
        "a/2.txt",
        "a/sub/3.txt",
        "ab.txt",
        "b.txt",
        "c/4.txt",
    ]
    assert (everything.is_truncated, everything.marker) == (False, "c/4.txt")
    assert [f.size for f in everything.files] == [7, 7, 11, 6, 5, 7]
    assert all(f.last_modified is not None for f in everything.files)
    folder = await store.list(ListRequest(prefix="a/"))
    assert [f.name for f in folder.files] == ["a/1.txt", "a/2.txt", "a/sub/3.txt"]
    assert [f.name for f in (await store.list(ListRequest(prefix="a"))).files] == [
        "a/1.txt", "a/2.txt", "a/sub/3.txt", "ab.txt",
    ]  # fmt: skip
    assert [f.name for f in (await store.list(ListRequest(prefix="a/s"))).files] == ["a/sub/3.txt"]
    empty = await store.list(ListRequest(prefix="zzz/"))
    assert (empty.files, empty.marker, empty.is_truncated) == ([], "", False)


async def test_list_pages_through_every_file_with_the_marker(store: Any) -> None:
    names = sorted(f"dir/{index:03d}" for index in range(23))
    for name in names:
        await put(store, name, b"x")
    seen, marker, pages = [], "", 0
    while True:
        page = await store.list(ListRequest(prefix="dir/", page_size=5, marker=marker))
        pages += 1
        seen += [f.name for f in page.files]
        assert len(page.files) <= 5
        if not page.is_truncated:
            break
        assert page.marker == page.files[-1].name
        marker = page.marker
    assert seen == names
    assert pages == 5
    after = await store.list(ListRequest(prefix="dir/", page_size=100, marker="dir/019"))
    assert [f.name for f in after.files] == ["dir/020", "dir/021", "dir/022"]


async def test_list_refuses_a_prefix_that_could_leave_the_root(store: Any) -> None:
    for prefix in ("../", "/etc", "a/../../", "x\x00"):
        with pytest.raises(InvalidFileNameError):
            await store.list(ListRequest(prefix=prefix))


# -- start-up ----------------------------------------------------------------------------------------


async def test_no_optional_features_are_claimed(store: Any) -> None:
    assert store.features() == frozenset()


async def test_bad_metadata_fails_naming_the_field(
    backend: Backend, bad_field: str, bad_value: str | None, named_field: str, request: pytest.FixtureRequest
) -> None:
    metadata = await backend.metadata(request)
    if bad_value is None:
        metadata.pop(bad_field, None)
    else:
        metadata[bad_field] = bad_value
    instance = registry.FILES.create(backend.type)
    with pytest.raises(MetadataError) as raised:
        await instance.init(metadata)
    assert raised.value.field == named_field
    await instance.close()


async def test_unusable_storage_fails_start_up_naming_the_field(
    backend: Backend, unusable: tuple[str, Metadata, str], request: pytest.FixtureRequest
) -> None:
    _, metadata, field = unusable
    instance = registry.FILES.create(backend.type)
    with pytest.raises(ComponentInitError) as raised:
        await asyncio.wait_for(instance.init(await metadata(request)), 30)
    assert raised.value.field == field
    assert "secret" not in str(raised.value)
    await instance.close()
