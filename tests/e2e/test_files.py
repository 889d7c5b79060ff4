"""The file API through real ``l8 run`` processes: the embedded ``filestore``, file.local and file.s3
(the session's moto server) over real sockets, literal ``..`` segments (which an HTTP client
library would resolve before sending), and the memory bound: a 1 GiB upload and download through
l8 grow its resident memory by less than 50 MB."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.process import L8Launcher, L8Process, write_component
from tests.s3_buckets import new_bucket, s3_metadata

pytestmark = pytest.mark.e2e

FILE = "/v1.0-alpha1/file"
MiB = 1024 * 1024


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=120) as http:
        yield http


async def local_store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    return "file.local", {"rootPath": str(tmp_path / "files")}


async def s3_store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    server = request.getfixturevalue("s3_server")
    return "file.s3", s3_metadata(server, await new_bucket(server))


@pytest.fixture(params=[local_store, s3_store], ids=["local", "s3"])
async def sidecar(request: pytest.FixtureRequest, l8: L8Launcher, tmp_path: Path) -> L8Process:
    kind, metadata = await request.param(request, tmp_path)
    folder = tmp_path / "resources"
    write_component(folder, "files", kind, metadata)
    return await asyncio.to_thread(l8, app_id="files", resources=[folder])


async def test_put_get_range_list_delete(sidecar: L8Process, client: httpx.AsyncClient) -> None:
    base = f"{sidecar.url}{FILE}/files"
    data = os.urandom(3 * MiB + 17)
    put = await client.put(f"{base}/in/a%20folder/data.bin?metadata.owner=e2e", content=data)
    assert put.status_code == 204, put.text
    got = await client.get(f"{base}/in/a%20folder/data.bin")
    assert (got.status_code, got.content, got.headers["metadata.owner"]) == (200, data, "e2e")
    ranged = await client.get(f"{base}/in/a%20folder/data.bin", headers={"range": "bytes=1048576-1048675"})
    assert ranged.status_code == 206
    assert ranged.headers["content-range"] == f"bytes 1048576-1048675/{len(data)}"
    assert ranged.content == data[MiB : MiB + 100]
    head = await client.head(f"{base}/in/a%20folder/data.bin")
    assert (head.status_code, head.headers["content-length"]) == (200, str(len(data)))
    listed = (await client.get(f"{base}?prefix=in/")).json()
    assert [(f["fileName"], f["size"]) for f in listed["files"]] == [("in/a folder/data.bin", str(len(data)))]
    assert (await client.delete(f"{base}/in/a%20folder/data.bin")).status_code == 204
    assert (await client.head(f"{base}/in/a%20folder/data.bin")).status_code == 404
    missing = await client.delete(f"{base}/in/a%20folder/data.bin")
    assert (missing.status_code, missing.json()["errorCode"]) == (404, "ERR_FILE_NOT_FOUND")


async def test_the_embedded_filestore_keeps_files_under_the_data_dir(
    l8: L8Launcher, client: httpx.AsyncClient
) -> None:
    sidecar = await asyncio.to_thread(l8, app_id="embedded")
    base = f"{sidecar.url}{FILE}/filestore"
    assert (await client.put(f"{base}/notes/today.txt", content=b"remember")).status_code == 204
    assert (sidecar.data_dir / "files" / "notes" / "today.txt").read_bytes() == b"remember"
    assert (await client.get(f"{base}/notes/today.txt")).content == b"remember"
    assert [f["fileName"] for f in (await client.get(base)).json()["files"]] == ["notes/today.txt"]
    types = {
        c["name"]: c["type"] for c in (await client.get(f"{sidecar.url}/v1.0/metadata")).json()["components"]
    }
    assert types["filestore"] == "file.local"


def raw_request(sidecar: L8Process, method: str, path: str, body: bytes = b"") -> bytes:
    """One request sent as written (no client-side path normalisation); the answer's bytes."""
    head = f"{method} {path} HTTP/1.1\r\nHost: l8\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=10) as connection:
        connection.sendall(head.encode() + body)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    "path",
    ["../outside.txt", "a/../../outside.txt", "./x", "a/./b", "..%2Foutside.txt", "%2E%2E/outside.txt"],
)
async def test_literal_dot_segments_are_refused(l8: L8Launcher, tmp_path: Path, path: str) -> None:
    folder = tmp_path / "resources"
    write_component(folder, "files", "file.local", {"rootPath": str(tmp_path / "root" / "files")})
    sidecar = await asyncio.to_thread(l8, app_id="dots", resources=[folder])
    for method in ("PUT", "GET", "DELETE"):
        answer = await asyncio.to_thread(raw_request, sidecar, method, f"{FILE}/files/{path}", b"x")
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
        assert b'"errorCode":"ERR_MALFORMED_REQUEST"' in answer
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["files"]
    assert list((tmp_path / "root" / "files").iterdir()) == []


# -- broken uploads --------------------------------------------------------------------------------


def local_sidecar(l8: L8Launcher, tmp_path: Path) -> tuple[L8Process, Path]:
    root = tmp_path / "root"
    folder = tmp_path / "resources"
    write_component(folder, "files", "file.local", {"rootPath": str(root)})
    return l8(app_id="broken", resources=[folder]), root


def partial_upload(sidecar: L8Process, name: str, declared: int, sent: int) -> socket.socket:
    """A PUT declaring ``declared`` bytes of which only ``sent`` go out; the socket stays open."""
    connection = socket.create_connection(("127.0.0.1", sidecar.port), timeout=10)
    head = f"PUT {FILE}/files/{name} HTTP/1.1\r\nHost: l8\r\nContent-Length: {declared}\r\n\r\n"
    connection.sendall(head.encode() + b"n" * sent)
    return connection


async def test_an_upload_cut_off_by_its_client_leaves_the_old_file(
    l8: L8Launcher, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    sidecar, root = await asyncio.to_thread(local_sidecar, l8, tmp_path)
    url = f"{sidecar.url}{FILE}/files/kept.txt"
    assert (await client.put(url, content=b"the old file")).status_code == 204
    connection = partial_upload(sidecar, "kept.txt", 10 * MiB, 3 * MiB)
    await asyncio.sleep(0.3)
    connection.close()
    await asyncio.sleep(0.3)
    assert (await client.get(url)).content == b"the old file"
    assert sorted(p.name for p in root.iterdir()) == ["kept.txt"]  # the temporary file went too


async def test_a_killed_sidecar_leaves_the_old_file(
    l8: L8Launcher, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    sidecar, root = await asyncio.to_thread(local_sidecar, l8, tmp_path)
    url = f"{sidecar.url}{FILE}/files/kept.txt"
    assert (await client.put(url, content=b"the old file")).status_code == 204
    connection = partial_upload(sidecar, "kept.txt", 10 * MiB, 3 * MiB)
    deadline = time.monotonic() + 10
    while not [p for p in root.iterdir() if p.name.startswith(".l8-upload-")]:
        assert time.monotonic() < deadline, "the upload never started"
        await asyncio.sleep(0.05)
    sidecar.stop(signal.SIGKILL)  # mid-upload: no clean-up runs
    connection.close()
    await asyncio.to_thread(sidecar.start)
    assert (await client.get(url)).content == b"the old file"
    listed = (await client.get(f"{sidecar.url}{FILE}/files")).json()
    assert [f["fileName"] for f in listed["files"]] == ["kept.txt"]  # the stray temporary file is not a file


# -- the memory bound ------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class PeakRss:
    """The highest VmRSS of a process, sampled every 20 ms on a thread of its own."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_bytes(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


async def transfer(client: httpx.AsyncClient, url: str, size: int) -> None:
    """Upload ``size`` pseudo-random bytes to ``url`` and download them back, comparing digests."""
    block = os.urandom(MiB)
    sent = hashlib.sha256()

    async def upload() -> AsyncIterator[bytes]:
        for _ in range(size // MiB):
            sent.update(block)
            yield block

    put = await client.put(url, content=upload(), headers={"content-length": str(size)})
    assert put.status_code == 204, put.text
    received = hashlib.sha256()
    length = 0
    async with client.stream("GET", url) as download:
        assert download.status_code == 200
        assert download.headers["content-length"] == str(size)
        async for chunk in download.aiter_raw():
            received.update(chunk)
            length += len(chunk)
    assert length == size
    assert received.hexdigest() == sent.hexdigest()


StoreMaker = Callable[[pytest.FixtureRequest, Path], Awaitable[tuple[str, dict[str, str]]]]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("make", "size"),
    [
        pytest.param(local_store, 1024 * MiB, id="local"),  # about 7 s here
        pytest.param(s3_store, 1024 * MiB, id="s3"),  # about 26 s: moto is slower than a disk
    ],
)
async def test_big_transfers_keep_memory_bounded(
    make: StoreMaker,
    size: int,
    request: pytest.FixtureRequest,
    l8: L8Launcher,
    tmp_path: Path,
    client: httpx.AsyncClient,
) -> None:
    kind, metadata = await make(request, tmp_path)
    folder = tmp_path / "resources"
    write_component(folder, "files", kind, metadata)
    sidecar = await asyncio.to_thread(
        l8, app_id="bounded", resources=[folder], args=["--max-body-size", "1Mi"]
    )
    url = f"{sidecar.url}{FILE}/files/big.bin"
    await transfer(client, url, 8 * MiB)  # every code path imported and warmed up
    before = rss_bytes(sidecar.pid)
    started = time.monotonic()
    with PeakRss(sidecar.pid) as peak:
        await transfer(client, url, size)
    growth = peak.peak - before
    print(
        f"{kind}: {size // MiB} MiB up and down in {time.monotonic() - started:.1f} s, RSS +{growth / MiB:.1f} MiB"
    )
    assert growth < 50 * 1000 * 1000, f"RSS grew by {growth / MiB:.1f} MiB"
    assert (await client.delete(url)).status_code == 204  # moto keeps objects in its memory
