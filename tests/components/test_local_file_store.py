"""file.local beyond the shared contract: no way out of rootPath (symlinks to files and folders,
whatever the operation), how a put lands on the disk (a temporary file in the target's folder,
renamed over it; the mode; the metadata as extended attributes), and disk I/O off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from components.errors import FileNotFound, InvalidFileNameError
from components.files.base import ListRequest, PutRequest
from components.files.local import LocalFileStore


@pytest.fixture
async def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
async def store(root: Path) -> AsyncIterator[LocalFileStore]:
    instance = LocalFileStore()
    await instance.init({"rootPath": str(root)})
    try:
        yield instance
    finally:
        await instance.close()


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def put(store: LocalFileStore, name: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
    await store.put(PutRequest(name, chunks(data), metadata or {}))


async def read(store: LocalFileStore, name: str) -> bytes:
    content = await store.get(name)
    try:
        return b"".join([chunk async for chunk in content.chunks])
    finally:
        await content.release()


async def test_the_root_is_created_and_metadata_names_match_any_case(tmp_path: Path) -> None:
    instance = LocalFileStore()
    await instance.init({"ROOTPATH": str(tmp_path / "a" / "b")})
    await put(instance, "x", b"1")
    assert (tmp_path / "a" / "b" / "x").read_bytes() == b"1"


async def test_symlinks_pointing_out_of_the_root_lead_nowhere(
    store: LocalFileStore, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"not yours")
    (root / "to-file").symlink_to(outside / "secret.txt")
    (root / "to-folder").symlink_to(outside, target_is_directory=True)
    for name in ("to-file", "to-folder/secret.txt", "to-folder/new.txt"):
        for operation in (store.get, store.stat, store.delete):
            with pytest.raises(InvalidFileNameError):
                await operation(name)
        with pytest.raises(InvalidFileNameError):
            await put(store, name, b"overwritten")
    with pytest.raises(InvalidFileNameError):
        await store.list(ListRequest(prefix="to-folder/"))
    assert (outside / "secret.txt").read_bytes() == b"not yours"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (await store.list(ListRequest())).files == []  # symlinks are not listed


async def test_symlinks_inside_the_root_are_refused_too(store: LocalFileStore, root: Path) -> None:
    await put(store, "real.txt", b"x")
    (root / "alias.txt").symlink_to(root / "real.txt")
    with pytest.raises(InvalidFileNameError):
        await store.delete("alias.txt")
    assert await read(store, "real.txt") == b"x"


async def test_the_root_itself_may_be_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real-root").mkdir()
    (tmp_path / "linked-root").symlink_to(tmp_path / "real-root", target_is_directory=True)
    instance = LocalFileStore()
    await instance.init({"rootPath": str(tmp_path / "linked-root")})
    await put(instance, "a/b.txt", b"x")
    assert (tmp_path / "real-root" / "a" / "b.txt").read_bytes() == b"x"
    assert [f.name for f in (await instance.list(ListRequest(prefix="a/"))).files] == ["a/b.txt"]


async def test_temporary_file_names_are_reserved(store: LocalFileStore) -> None:
    with pytest.raises(InvalidFileNameError):
        await put(store, "dir/.l8-upload-abc", b"x")


async def test_a_put_goes_through_a_temporary_file_in_the_same_folder(
    store: LocalFileStore, root: Path
) -> None:
    seen: list[list[str]] = []

    async def watched() -> AsyncIterator[bytes]:
        yield b"first half, "
        seen.append(sorted(p.name for p in (root / "folder").iterdir()))
        yield b"second half"

    await put(store, "folder/target.txt", b"the old file")
    await store.put(PutRequest("folder/target.txt", watched(), {}))
    [during] = seen
    assert "target.txt" in during and len(during) == 2
    assert next(name for name in during if name != "target.txt").startswith(".l8-upload-")
    assert sorted(p.name for p in (root / "folder").iterdir()) == ["target.txt"]
    assert (root / "folder" / "target.txt").read_bytes() == b"first half, second half"


async def test_files_are_written_readable_and_metadata_kept_as_extended_attributes(
    store: LocalFileStore, root: Path
) -> None:
    await put(store, "f.txt", b"x", {"owner": "ops"})
    path = root / "f.txt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.getxattr(path, "user.l8.owner") == b"ops"


async def test_a_file_cannot_replace_a_folder_nor_stand_in_a_path(store: LocalFileStore) -> None:
    await put(store, "dir/inner.txt", b"x")
    with pytest.raises(InvalidFileNameError):
        await put(store, "dir", b"y")
    with pytest.raises(InvalidFileNameError):
        await put(store, "dir/inner.txt/deeper", b"y")
    with pytest.raises(FileNotFound):
        await store.get("dir/inner.txt/deeper")
    assert await read(store, "dir/inner.txt") == b"x"


async def test_a_read_of_a_file_truncated_behind_the_store_fails(store: LocalFileStore, root: Path) -> None:
    from components.errors import BackendError

    await put(store, "shrinking", b"x" * (3 * 1024 * 1024))
    content = await store.get("shrinking")
    os.truncate(root / "shrinking", 10)
    with pytest.raises(BackendError):
        async for _ in content.chunks:
            pass
    await content.release()


async def test_big_writes_and_reads_leave_the_event_loop_free(store: LocalFileStore) -> None:
    """A 64 MiB put and get while a ticker runs every 10 ms: no tick is late by more than 100 ms
    (a blocking write of a whole buffer on the loop would hold it for far longer on a busy disk)."""
    block = os.urandom(1024 * 1024)
    lateness: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            started = time.monotonic()
            await asyncio.sleep(0.01)
            lateness.append(time.monotonic() - started - 0.01)

    async def many() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield block

    ticking = asyncio.create_task(ticker())
    await store.put(PutRequest("big", many(), {}))
    content = await store.get("big")
    total = 0
    async for chunk in content.chunks:
        total += len(chunk)
    await content.release()
    done.set()
    await ticking
    assert total == 64 * 1024 * 1024
    assert max(lateness) < 0.1, max(lateness)


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_operations_cut_short_by_a_deadline_leak_no_descriptor_nor_file(
    store: LocalFileStore, root: Path
) -> None:
    await put(store, "f.bin", b"x" * 10_000)
    await asyncio.sleep(0.05)  # the worker threads started by the put are idle again
    before = open_descriptors()
    for attempt in range(200):
        timeout = (attempt % 10) * 0.0002
        with contextlib.suppress(TimeoutError):
            content = await asyncio.wait_for(store.get("f.bin"), timeout)
            await content.release()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(put(store, f"new-{attempt}.bin", b"y"), timeout)
    await asyncio.sleep(0.05)
    assert open_descriptors() == before
    assert not [name for name in os.listdir(root) if name.startswith(".l8-upload-")]
