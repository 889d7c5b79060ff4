"""The file API over HTTP (routers/files.py), against file.local and file.s3: the answers of each
route, Range requests, and every bad input answered in Dapr's error shape (unknown store, missing
file, names escaping the root however they are spelt, bad list arguments, bad metadata)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.routers.conftest import JSON, Sidecar, StartSidecar, assert_error, component
from tests.s3_buckets import new_bucket, s3_metadata

FILE = "/v1.0-alpha1/file"
MiB = 1024 * 1024

Store = Callable[[pytest.FixtureRequest], Awaitable[str]]
"""The component YAML of a file store named ``files``."""


async def _local(request: pytest.FixtureRequest) -> str:
    return component("files", "file.local", rootPath=str(request.getfixturevalue("tmp_path") / "files"))


async def _s3(request: pytest.FixtureRequest) -> str:
    server = request.getfixturevalue("s3_server")
    return component("files", "file.s3", **s3_metadata(server, await new_bucket(server), partSize="5Mi"))


@pytest.fixture(params=[_local, _s3], ids=["local", "s3"])
async def sidecar(request: pytest.FixtureRequest, start_sidecar: StartSidecar) -> Sidecar:
    return await start_sidecar(await request.param(request))


@pytest.fixture
async def local(start_sidecar: StartSidecar, tmp_path: Any) -> Sidecar:
    return await start_sidecar(component("files", "file.local", rootPath=str(tmp_path / "files")))


async def put(sidecar: Sidecar, name: str, data: bytes, query: str = "") -> None:
    response = await sidecar.request("PUT", f"{FILE}/files/{name}{query}", content=data)
    assert response.status_code == 204, response.text
    assert response.content == b""


# -- what each route answers -----------------------------------------------------------------------


async def test_put_get_head_list_delete(sidecar: Sidecar) -> None:
    await put(sidecar, "reports/q1.csv", b"a,b\n1,2\n", "?metadata.owner=ops&metadata.kind=csv")
    got = await sidecar.request("GET", f"{FILE}/files/reports/q1.csv")
    assert got.status_code == 200
    assert got.content == b"a,b\n1,2\n"
    assert got.headers["content-length"] == "8"
    assert got.headers["content-type"] == "text/csv"
    assert got.headers["accept-ranges"] == "bytes"
    assert got.headers["last-modified"].endswith(" GMT")
    assert (got.headers["metadata.owner"], got.headers["metadata.kind"]) == ("ops", "csv")

    head = await sidecar.request("HEAD", f"{FILE}/files/reports/q1.csv")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == "8"
    assert head.headers["metadata.owner"] == "ops"
    assert head.headers["last-modified"] == got.headers["last-modified"]

    listed = await sidecar.request("GET", f"{FILE}/files?prefix=reports/")
    assert listed.status_code == 200
    assert listed.headers["content-type"] == JSON
    body = listed.json()
    assert set(body) == {"files", "marker", "isTruncated"}
    [entry] = body["files"]
    assert set(entry) == {"fileName", "size", "lastModified", "metadata"}
    assert (entry["fileName"], entry["size"]) == ("reports/q1.csv", "8")
    assert entry["lastModified"].endswith("Z")
    assert (body["marker"], body["isTruncated"]) == ("reports/q1.csv", False)

    deleted = await sidecar.request("DELETE", f"{FILE}/files/reports/q1.csv")
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await sidecar.request("GET", f"{FILE}/files?prefix=reports/")).json()["files"] == []


async def test_media_types_are_guessed_from_the_name(sidecar: Sidecar) -> None:
    for name, media_type in [
        ("a.json", "application/json"),
        ("b.png", "image/png"),
        ("no-extension", "application/octet-stream"),
    ]:
        await put(sidecar, name, b"{}")
        assert (await sidecar.request("GET", f"{FILE}/files/{name}")).headers["content-type"] == media_type


async def test_an_empty_body_writes_an_empty_file(sidecar: Sidecar) -> None:
    await put(sidecar, "empty", b"")
    got = await sidecar.request("GET", f"{FILE}/files/empty")
    assert (got.status_code, got.content, got.headers["content-length"]) == (200, b"", "0")


async def test_list_pages_with_page_size_and_marker(sidecar: Sidecar) -> None:
    for index in range(7):
        await put(sidecar, f"p/{index}", b"x")
    first = (await sidecar.request("GET", f"{FILE}/files?prefix=p/&pageSize=3")).json()
    assert [f["fileName"] for f in first["files"]] == ["p/0", "p/1", "p/2"]
    assert (first["marker"], first["isTruncated"]) == ("p/2", True)
    second = (await sidecar.request("GET", f"{FILE}/files?prefix=p/&pageSize=3&marker=p/2")).json()
    assert [f["fileName"] for f in second["files"]] == ["p/3", "p/4", "p/5"]
    last = (await sidecar.request("GET", f"{FILE}/files?prefix=p/&pageSize=3&marker=p/5")).json()
    assert ([f["fileName"] for f in last["files"]], last["isTruncated"]) == (["p/6"], False)


@pytest.mark.parametrize(
    ("range_header", "status", "content_range", "body"),
    [
        ("bytes=0-3", 206, "bytes 0-3/10", b"0123"),
        ("bytes=7-", 206, "bytes 7-9/10", b"789"),
        ("bytes=-2", 206, "bytes 8-9/10", b"89"),
        ("bytes=5-99", 206, "bytes 5-9/10", b"56789"),
        ("bytes=0-1,4-5", 200, None, b"0123456789"),  # several ranges: ignored
        ("items=0-3", 200, None, b"0123456789"),  # another unit: ignored
        ("bytes=5-2", 200, None, b"0123456789"),  # last before first: ignored
        ("bytes=x-y", 200, None, b"0123456789"),  # not a range: ignored
    ],
)
async def test_ranges(
    sidecar: Sidecar, range_header: str, status: int, content_range: str | None, body: bytes
) -> None:
    await put(sidecar, "digits.txt", b"0123456789")
    got = await sidecar.request("GET", f"{FILE}/files/digits.txt", headers={"range": range_header})
    assert got.status_code == status
    assert got.headers.get("content-range") == content_range
    assert got.content == body
    assert got.headers["content-length"] == str(len(body))


@pytest.mark.parametrize("range_header", ["bytes=10-", "bytes=10-20", "bytes=-0"])
async def test_an_unsatisfiable_range_answers_416(sidecar: Sidecar, range_header: str) -> None:
    await put(sidecar, "digits.txt", b"0123456789")
    got = await sidecar.request("GET", f"{FILE}/files/digits.txt", headers={"range": range_header})
    assert_error(got, 416, "ERR_FILE_RANGE_NOT_SATISFIABLE")
    assert got.headers["content-range"] == "bytes */10"


async def test_a_body_over_max_body_size_is_still_a_file(start_sidecar: StartSidecar, tmp_path: Any) -> None:
    sidecar = await start_sidecar(
        component("files", "file.local", rootPath=str(tmp_path / "files")),
        component("statestore", "state.in-memory"),
        max_body_size=1024 * 1024,
    )
    data = os.urandom(3 * MiB + 5)
    await put(sidecar, "big.bin", data)
    got = await sidecar.request("GET", f"{FILE}/files/big.bin")
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
    # Other routes keep the limit.
    capped = await sidecar.request("POST", "/v1.0/state/statestore", content=b"[" + b" " * (2 * MiB) + b"]")
    assert capped.status_code == 400


# -- bad inputs ------------------------------------------------------------------------------------


async def test_an_unknown_store_answers_400(sidecar: Sidecar) -> None:
    for method, path in [("PUT", "/nope/a"), ("GET", "/nope/a"), ("DELETE", "/nope/a"), ("GET", "/nope")]:
        response = await sidecar.request(method, FILE + path, content=b"x" if method == "PUT" else None)
        assert_error(response, 400, "ERR_FILE_STORE_NOT_FOUND", message="file store nope not found")
    head = await sidecar.request("HEAD", f"{FILE}/nope/a")
    assert head.status_code == 400


async def test_no_file_store_at_all_answers_500(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(component("statestore", "state.in-memory"))
    response = await sidecar.request("GET", f"{FILE}/filestore/a")
    assert_error(response, 500, "ERR_FILE_STORE_NOT_CONFIGURED", message="file store is not configured")


async def test_a_missing_file_answers_404(sidecar: Sidecar) -> None:
    for method in ("GET", "DELETE"):
        response = await sidecar.request(method, f"{FILE}/files/missing/file.txt")
        assert_error(
            response, 404, "ERR_FILE_NOT_FOUND", message="file missing/file.txt not found in file store files"
        )
    head = await sidecar.request("HEAD", f"{FILE}/files/missing/file.txt")
    assert head.status_code == 404
    assert head.content == b""


@pytest.mark.parametrize(
    "escaped_name",
    [
        "..%2F..%2Fetc%2Fpasswd",  # encoded slashes
        "a/..%2F..%2Fb",
        "%2E%2E/x",  # encoded dots (httpx would resolve literal ones before sending: e2e sends those)
        "a/%2E/b",
        "%2Fetc%2Fpasswd",  # an absolute name
        "nul%00byte",
        "back%5Cslash",  # an encoded backslash
        "..%5C..%5Cwindows",
        "new%0Aline",
    ],
)
async def test_names_that_could_escape_are_refused_everywhere(sidecar: Sidecar, escaped_name: str) -> None:
    for method in ("PUT", "GET", "DELETE"):
        response = await sidecar.request(
            method, f"{FILE}/files/{escaped_name}", content=b"x" if method == "PUT" else None
        )
        body = assert_error(response, 400, "ERR_MALFORMED_REQUEST")
        assert body["message"].startswith("invalid file name in file store files: ")
    assert (await sidecar.request("HEAD", f"{FILE}/files/{escaped_name}")).status_code == 400
    assert (await sidecar.request("GET", f"{FILE}/files")).json()["files"] == []


async def test_a_bad_escape_in_the_name_answers_400(sidecar: Sidecar) -> None:
    response = await sidecar.request("GET", f"{FILE}/files/bad%zzescape")
    assert_error(response, 400, "ERR_MALFORMED_REQUEST")


async def test_a_name_under_a_symlink_out_of_the_root_is_refused(local: Sidecar, tmp_path: Any) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    (tmp_path / "files" / "link").symlink_to(outside, target_is_directory=True)
    for method in ("PUT", "GET", "DELETE"):
        response = await local.request(
            method, f"{FILE}/files/link/secret", content=b"x" if method == "PUT" else None
        )
        assert_error(response, 400, "ERR_MALFORMED_REQUEST")
    assert (outside / "secret").read_bytes() == b"s"


@pytest.mark.parametrize("page_size", ["0", "-1", "1001", "abc", "1.5", "\u0661"])
async def test_a_bad_page_size_answers_400(sidecar: Sidecar, page_size: str) -> None:
    response = await sidecar.request("GET", f"{FILE}/files", params={"pageSize": page_size})
    assert_error(response, 400, "ERR_MALFORMED_REQUEST")


@pytest.mark.parametrize(
    ("name", "value"),
    [("prefix", "../"), ("prefix", "/etc"), ("prefix", "a\x00"), ("marker", "a\x00b"), ("marker", "../x")],
)
async def test_a_bad_prefix_or_marker_answers_400(sidecar: Sidecar, name: str, value: str) -> None:
    response = await sidecar.request("GET", f"{FILE}/files", params={name: value})
    assert_error(response, 400, "ERR_MALFORMED_REQUEST")


@pytest.mark.parametrize("query", ["?metadata.bad%20key=v", "?metadata.k=line%0Abreak", "?metadata.k=nul%00"])
async def test_bad_metadata_answers_400_and_writes_nothing(sidecar: Sidecar, query: str) -> None:
    response = await sidecar.request("PUT", f"{FILE}/files/meta.txt{query}", content=b"x")
    assert_error(response, 400, "ERR_MALFORMED_REQUEST")
    assert (await sidecar.request("HEAD", f"{FILE}/files/meta.txt")).status_code == 404


async def test_the_file_stores_are_listed_in_the_metadata(sidecar: Sidecar) -> None:
    components = {c["name"]: c for c in (await sidecar.metadata())["components"]}
    assert components["files"]["type"] in ("file.local", "file.s3")
    assert components["files"]["capabilities"] == []
