"""bindings.aws.s3 against the session's moto server: every operation with its request metadata,
base64 both ways, Dapr's answers (field names, Go's ListObjects JSON, error texts), presigned URLs
fetched with a plain HTTP GET, list paging with a marker, and the metadata rules at start-up."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import httpx
import orjson
import pytest

from components import registry
from components.bindings.base import BindingError, InvokeRequest, InvokeResponse, OutputBinding
from components.bindings.s3_shapes import go_duration, go_float, go_time, tagging, unquote
from components.errors import ComponentInitError, MetadataError
from tests.s3_buckets import new_bucket, s3_client, s3_metadata
from tests.servers import S3Server

Make = Callable[..., Coroutine[Any, Any, OutputBinding]]


@pytest.fixture
async def bucket(s3_server: S3Server) -> str:
    return await new_bucket(s3_server)


@pytest.fixture
async def make(s3_server: S3Server, bucket: str) -> AsyncIterator[Make]:
    """Starts an aws.s3 binding on the test's bucket with extra component metadata."""
    started: list[Any] = []

    async def start(**extra: str) -> OutputBinding:
        instance: Any = registry.create("bindings.aws.s3")
        started.append(instance)
        await instance.init(s3_metadata(s3_server, bucket, **extra))
        return instance  # type: ignore[no-any-return]

    yield start
    for instance in started:
        await instance.close()


@pytest.fixture
async def binding(make: Make) -> OutputBinding:
    return await make()


async def call(binding: OutputBinding, operation: str, data: bytes = b"", **metadata: str) -> InvokeResponse:
    answer = await binding.invoke(InvokeRequest(data, metadata, operation))
    assert answer is not None
    return answer


async def stored(s3_server: S3Server, bucket: str, key: str) -> dict[str, Any]:
    async with s3_client(s3_server) as client:
        answer = await client.get_object(Bucket=bucket, Key=key)
        async with answer["Body"] as body:
            answer["data"] = await body.read()
        answer["tags"] = (await client.get_object_tagging(Bucket=bucket, Key=key))["TagSet"]
    return dict(answer)


async def test_create_stores_the_unquoted_data_and_answers_as_dapr(
    binding: OutputBinding, s3_server: S3Server, bucket: str
) -> None:
    answer = await call(binding, "create", b'"hello \\"world\\""', key="in/a b.txt")
    body = orjson.loads(answer.data)
    assert body == {"location": f"{s3_server.url}/{bucket}/in/a%20b.txt", "versionID": None}
    assert answer.metadata == {"key": "in/a b.txt"}
    assert (await stored(s3_server, bucket, "in/a b.txt"))["data"] == b'hello "world"'
    # JSON that is not a string: a number in Go's form, an object as it came.
    await call(binding, "create", b"1e3", key="n")
    await call(binding, "create", b'{"a": [1, 2]}', key="o")
    await call(binding, "create", b"not json", key="raw")
    assert (await stored(s3_server, bucket, "n"))["data"] == b"1000"
    assert (await stored(s3_server, bucket, "o"))["data"] == b'{"a": [1, 2]}'
    assert (await stored(s3_server, bucket, "raw"))["data"] == b"not json"


async def test_create_without_a_key_names_the_object_with_a_uuid(
    binding: OutputBinding, s3_server: S3Server, bucket: str
) -> None:
    answer = await call(binding, "create", b'"x"')
    key = answer.metadata["key"]
    assert str(uuid.UUID(key)) == key
    assert (await stored(s3_server, bucket, key))["data"] == b"x"


async def test_create_with_content_type_storage_class_and_tags(
    binding: OutputBinding, s3_server: S3Server, bucket: str
) -> None:
    await call(
        binding,
        "create",
        b'"<p/>"',
        key="page.html",
        tags=" team = web ,tier=gold",
        storageClass="STANDARD_IA",
        **{"Content-Type": "text/html"},
    )
    object_ = await stored(s3_server, bucket, "page.html")
    assert object_["ContentType"] == "text/html"
    assert object_["StorageClass"] == "STANDARD_IA"
    assert sorted((tag["Key"], tag["Value"]) for tag in object_["tags"]) == [
        ("team", "web"),
        ("tier", "gold"),
    ]
    with pytest.raises(BindingError, match=r"invalid tag format: 'nokey' \(expected key=value\)"):
        await call(binding, "create", b"x", key="t", tags="a=1,nokey")
    with pytest.raises(BindingError, match="invalid tag format"):
        await call(binding, "create", b"x", key="t", tags="")


async def test_a_component_storage_class_is_the_default(make: Make, s3_server: S3Server, bucket: str) -> None:
    binding = await make(storageClass="STANDARD_IA")
    await call(binding, "create", b"x", key="ia")
    await call(binding, "create", b"x", key="std", storageClass="STANDARD")
    assert (await stored(s3_server, bucket, "ia"))["StorageClass"] == "STANDARD_IA"
    assert (await stored(s3_server, bucket, "std")).get("StorageClass", "STANDARD") == "STANDARD"


async def test_base64_both_ways_from_component_or_request(
    make: Make, s3_server: S3Server, bucket: str
) -> None:
    raw = bytes(range(256))
    encoded = base64.b64encode(raw)
    plain = await make()
    await call(plain, "create", b'"' + encoded + b'"', key="req", decodeBase64="true")
    assert (await stored(s3_server, bucket, "req"))["data"] == raw
    assert (await call(plain, "get", key="req", encodeBase64="1")).data == encoded
    assert (await call(plain, "get", key="req")).data == raw
    both = await make(decodeBase64="true", encodeBase64="true")
    await call(both, "create", encoded, key="comp")
    assert (await stored(s3_server, bucket, "comp"))["data"] == raw
    assert (await call(both, "get", key="comp")).data == encoded
    # A request's value overrides the component's (Dapr's IsTruthy: anything else is false).
    assert (await call(both, "get", key="comp", encodeBase64="no")).data == raw
    await call(both, "create", b'"kept as text"', key="text", decodeBase64="false")
    assert (await stored(s3_server, bucket, "text"))["data"] == b"kept as text"
    with pytest.raises(BindingError, match="illegal base64 data"):
        await call(both, "create", b'"not base64!"', key="bad")


async def test_get_and_delete_need_a_key_and_a_missing_object_is_not_found(binding: OutputBinding) -> None:
    for operation in ("get", "delete", "presign"):
        with pytest.raises(BindingError, match=r"^s3 binding error: required metadata 'key' missing$"):
            await call(binding, operation, presignTTL="1m")
    with pytest.raises(BindingError, match=r"^object not found$"):
        await call(binding, "get", key="missing")
    # S3 deletes a missing key silently, and so does the binding (204).
    assert await binding.invoke(InvokeRequest(b"", {"key": "missing"}, "delete")) is None


async def test_delete_removes_the_object(binding: OutputBinding, s3_server: S3Server, bucket: str) -> None:
    await call(binding, "create", b"x", key="gone")
    assert await binding.invoke(InvokeRequest(b"", {"key": "gone"}, "delete")) is None
    with pytest.raises(BindingError, match="object not found"):
        await call(binding, "get", key="gone")


async def test_list_answers_gos_list_objects_output_and_pages_with_a_marker(
    binding: OutputBinding, bucket: str
) -> None:
    keys = [f"p/{n:02d}" for n in range(5)] + ["q/x", "top"]
    for key in keys:
        await call(binding, "create", b"data", key=key)
    everything = orjson.loads((await call(binding, "list")).data)
    assert list(everything) == [
        "CommonPrefixes",
        "Contents",
        "Delimiter",
        "EncodingType",
        "IsTruncated",
        "Marker",
        "MaxKeys",
        "Name",
        "NextMarker",
        "Prefix",
        "RequestCharged",
        "ResultMetadata",
    ]
    assert [entry["Key"] for entry in everything["Contents"]] == keys
    assert (everything["MaxKeys"], everything["Name"], everything["IsTruncated"]) == (1000, bucket, False)
    first = everything["Contents"][0]
    assert list(first) == [
        "ChecksumAlgorithm",
        "ChecksumType",
        "ETag",
        "Key",
        "LastModified",
        "Owner",
        "RestoreStatus",
        "Size",
        "StorageClass",
    ]
    assert first["Size"] == 4 and first["LastModified"].endswith("Z") and first["ETag"].startswith('"')
    assert everything["ResultMetadata"] == {} and everything["CommonPrefixes"] is None

    pages: list[str] = []
    marker = ""
    while True:
        page = orjson.loads(
            (await call(binding, "list", orjson.dumps({"maxResults": 2, "marker": marker}))).data
        )
        pages.append(",".join(entry["Key"] for entry in page["Contents"]))
        if not page["IsTruncated"]:
            break
        marker = page["Contents"][-1]["Key"]
    assert pages == ["p/00,p/01", "p/02,p/03", "p/04,q/x", "top"]

    folders = orjson.loads((await call(binding, "list", b'{"Delimiter": "/", "prefix": ""}')).data)
    assert [entry["Prefix"] for entry in folders["CommonPrefixes"]] == ["p/", "q/"]
    assert [entry["Key"] for entry in folders["Contents"]] == ["top"]
    assert folders["Delimiter"] == "/"
    under_p = orjson.loads((await call(binding, "list", b'{"prefix": "p/", "maxResults": 0}')).data)
    assert len(under_p["Contents"]) == 5 and under_p["MaxKeys"] == 1000 and under_p["Prefix"] == "p/"
    empty = orjson.loads((await call(binding, "list", b'{"prefix": "none/"}')).data)
    assert empty["Contents"] is None
    for bad in (b"[1]", b"{", b'{"maxResults": "2"}', b'{"prefix": 3}'):
        with pytest.raises(
            BindingError, match=r"s3 binding \(List Operation\) - unable to parse Data property"
        ):
            await call(binding, "list", bad)


async def test_presign_gives_a_url_a_plain_http_get_can_use(make: Make) -> None:
    binding = await make()
    await call(binding, "create", b'"shared"', key="share/it.txt")
    url = orjson.loads((await call(binding, "presign", key="share/it.txt", presignTTL="15m")).data)[
        "presignURL"
    ]
    assert "X-Amz-Expires=900" in url and "X-Amz-Signature=" in url
    async with httpx.AsyncClient() as http:
        fetched = await http.get(url)
        assert (fetched.status_code, fetched.content) == (200, b"shared")
        # create with presignTTL (request or component) answers the URL too.
        created = orjson.loads((await call(binding, "create", b"x", key="c", presignTTL="1h30m")).data)
        assert "X-Amz-Expires=5400" in created["presignURL"]
        assert (await http.get(created["presignURL"])).content == b"x"
        defaults = await make(presignTTL="2m")
        answer = orjson.loads((await call(defaults, "presign", key="c")).data)
        assert "X-Amz-Expires=120" in answer["presignURL"]
    with pytest.raises(BindingError, match="required metadata 'presignTTL' missing"):
        await call(binding, "presign", key="c")
    with pytest.raises(BindingError, match='cannot parse duration 900: time: missing unit in duration "900"'):
        await call(binding, "presign", key="c", presignTTL="900")


async def test_bulk_operations_answer_each_item(
    binding: OutputBinding, s3_server: S3Server, bucket: str
) -> None:
    created = orjson.loads(
        (
            await call(
                binding,
                "bulkCreate",
                orjson.dumps(
                    {
                        "items": [
                            {"key": "b/1", "data": "one", "contentType": "text/plain"},
                            {"key": "b/2", "data": "two"},
                            {"key": "b/3"},
                            {"key": "", "data": "x"},
                            {"key": "b/4", "data": "x", "filePath": "/etc/passwd"},
                        ],
                        "concurrency": 2,
                    }
                ),
            )
        ).data
    )
    assert created == [
        {"key": "b/1", "location": f"{s3_server.url}/{bucket}/b/1"},
        {"key": "b/2", "location": f"{s3_server.url}/{bucket}/b/2"},
        {"key": "b/3", "error": "either data or filePath is required"},
        {"key": "", "error": "key is required"},
        {"key": "b/4", "error": "filePath is not supported"},
    ]
    assert (await stored(s3_server, bucket, "b/1"))["ContentType"] == "text/plain"
    got = orjson.loads((await call(binding, "bulkGet", b'{"items": [{"key": "b/1"}, {"key": "b/9"}]}')).data)
    assert got == [{"key": "b/1", "data": "one"}, {"key": "b/9", "error": "object not found"}]
    got = orjson.loads(
        (await call(binding, "bulkGet", b'{"items": [{"key": "b/2"}]}', encodeBase64="true")).data
    )
    assert got == [{"key": "b/2", "data": base64.b64encode(b"two").decode()}]
    deleted = orjson.loads((await call(binding, "bulkDelete", b'{"keys": ["b/1", "b/2", "b/1", " "]}')).data)
    assert deleted == [
        {"key": "b/1"},
        {"key": "b/2"},
        {"key": "b/1"},
        {"key": " ", "error": "key is required"},
    ]
    with pytest.raises(BindingError, match="object not found"):
        await call(binding, "get", key="b/1")
    with pytest.raises(BindingError, match="bulkGet requires at least one item"):
        await call(binding, "bulkGet", b'{"items": []}')
    with pytest.raises(BindingError, match="concurrency must be greater than 0, got 0"):
        await call(binding, "bulkCreate", b'{"items": [{"key": "k", "data": "d"}], "concurrency": 0}')
    with pytest.raises(BindingError, match="bulkDelete requires at least one key"):
        await call(binding, "bulkDelete", b"{}")
    with pytest.raises(BindingError, match="invalid bulkCreate payload"):
        await call(binding, "bulkCreate", b"nope")


async def test_file_path_is_refused(binding: OutputBinding, make: Make) -> None:
    with pytest.raises(BindingError, match="filePath is not supported"):
        await call(binding, "create", b"", key="k", filePath="/etc/passwd")
    with pytest.raises(MetadataError) as failure:
        await make(filePath="/etc/passwd")
    assert failure.value.field == "filePath"


async def test_a_versioned_bucket_answers_the_version(
    binding: OutputBinding, s3_server: S3Server, bucket: str
) -> None:
    async with s3_client(s3_server) as client:
        await client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    body = orjson.loads((await call(binding, "create", b"v1", key="versioned")).data)
    assert isinstance(body["versionID"], str) and body["versionID"]


async def test_a_missing_bucket_fails_init_naming_the_field(s3_server: S3Server) -> None:
    instance: Any = registry.create("bindings.aws.s3")
    with pytest.raises(ComponentInitError, match="bucket l8-never-made does not exist") as failure:
        await instance.init(s3_metadata(s3_server, "l8-never-made"))
    assert failure.value.field == "bucket"
    await instance.close()
    metadata = s3_metadata(s3_server, "x")
    del metadata["bucket"]
    with pytest.raises(MetadataError) as missing:
        await instance.init(metadata)
    assert missing.value.field == "bucket"


def test_aws_region_is_daprs_other_name_for_region() -> None:
    from components.bindings.s3 import S3BindingMetadata
    from components.metadata import decode

    assert decode(S3BindingMetadata, {"bucket": "b-1", "awsRegion": "eu-west-1"}).region == "eu-west-1"
    both = {"bucket": "b-1", "awsRegion": "eu-west-1", "region": "us-west-2"}
    assert decode(S3BindingMetadata, both).region == "us-west-2"
    assert decode(S3BindingMetadata, {"bucket": "b-1"}).region == "us-east-1"


def test_gos_renderings() -> None:
    assert unquote(b'"a\\nb"') == b"a\nb"
    assert unquote(b'"a\\u003cb"') == b"a<b"  # json.Marshal's escape of <
    assert unquote(b' "in place" ') == b"in place" and unquote(b'"') == b'"' and unquote(b'""') == b""
    assert unquote(b'"a"b"') == b'"a"b"'  # not JSON: kept
    assert unquote(b"null") == b""
    assert unquote(b"true") == b"true"
    assert unquote(b"12345678901234567890") == b"12345678901234567000"
    assert unquote(b"0.000001") == b"0.000001"
    assert unquote(b" [1]") == b" [1]"
    assert unquote(b"") == b""
    assert go_float(1e21) == "1000000000000000000000" and go_float(1.5) == "1.5"
    assert go_duration("1h30m") == 5400 and go_duration("250ms") == 0.25 and go_duration("0") == 0
    assert go_duration("-1.5s") == -1.5
    for bad, message in [
        ("90", 'missing unit in duration "90"'),
        ("5d", 'unknown unit "d" in duration "5d"'),
        ("", 'invalid duration ""'),
        ("m", 'invalid duration "m"'),
    ]:
        with pytest.raises(ValueError, match=message):
            go_duration(bad)
    assert tagging("a=1") == "a=1" and tagging("a = 1 , b=x=y") == "a=1&b=x=y"
    from datetime import UTC, datetime

    assert go_time(datetime(2024, 5, 1, 10, 0, 0, 120000, tzinfo=UTC)) == "2024-05-01T10:00:00.12Z"
    assert go_time(None) is None


async def test_a_large_object_is_not_held_twice_by_the_binding(binding: OutputBinding) -> None:
    """A 16 MiB object: create (base64 in a JSON string, decoded straight from the request) and get
    each peak near two copies (the object, and the S3 client's or aiohttp's own while it sends or
    joins), not the three or four that decoding into a str, then bytes, then bytes again costs."""
    import os
    import tracemalloc

    size = 16 * 1024 * 1024
    raw = os.urandom(size)
    request = InvokeRequest(
        b'"' + base64.b64encode(raw) + b'"', {"key": "big", "decodeBase64": "true"}, "create"
    )
    await call(binding, "create", b'"warm"', key="warm")
    await call(binding, "get", key="warm")
    tracemalloc.start()
    try:
        await binding.invoke(request)
        create_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        got = await call(binding, "get", key="big")
        get_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got.data == raw
    assert create_peak < 2.2 * size, create_peak / size
    assert get_peak < 2.2 * size, get_peak / size
