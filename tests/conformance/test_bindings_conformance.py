"""Every binding against the contract in components/bindings/base.py.

What is specific to a backend lives in the tables only: OUTPUTS (each output binding's type,
metadata, operations, one write and a way to read it back from the real server or disk) and INPUTS
(each input binding's type, metadata and a way to make it produce an event). The suites below are
the same for all: claimed directions and operations both ways, the write visible where it went,
failures as ComponentErrors, close idempotent; for inputs, events reach the handler, a refused
event comes again where the source redelivers, and nothing is handed over after stop().
Backend-specific operations (Redis increment, PostgreSQL query) follow at the end.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from redis.asyncio import Redis

from components import registry
from components.bindings.base import (
    BindingError,
    Feature,
    InputBinding,
    InvokeRequest,
    InvokeResponse,
    OutputBinding,
    ReadEvent,
)
from components.errors import ComponentError, ComponentInitError, MetadataError
from tests.s3_buckets import ACCESS_KEY, SECRET_KEY, new_bucket_now, s3_client, s3_metadata
from tests.servers import LOOPBACK, free_port
from wasm.examples.builder import build

Metadata = Callable[[pytest.FixtureRequest], dict[str, str]]
ReadBack = Callable[[pytest.FixtureRequest, str], Awaitable[bytes | None]]
"""What the server (or disk) holds under the test's name, read without the binding."""


@dataclass(frozen=True, slots=True)
class Output:
    id: str
    type: str
    metadata: Metadata
    features: frozenset[Feature]
    operations: frozenset[str]
    write: Callable[[str, bytes], InvokeRequest]
    """A request writing the bytes under the name."""
    read_back: ReadBack
    unreachable: Metadata | None = None
    """Metadata naming a closed port; init fails with ComponentInitError naming ``server_field``."""
    server_field: str = ""
    bad_metadata: tuple[tuple[str, str | None, str], ...] = ()
    """(field, value or None for absent, field the MetadataError or ComponentInitError names)."""


async def _file(request: pytest.FixtureRequest, name: str) -> bytes | None:
    path = request.getfixturevalue("tmp_path") / "root" / name
    return path.read_bytes() if path.exists() else None


async def _redis_value(request: pytest.FixtureRequest, name: str) -> bytes | None:
    client = Redis.from_url(request.getfixturevalue("redis_server").url)
    try:
        value = await client.get(name)
        return value if isinstance(value, bytes) else None
    finally:
        await client.aclose()


async def _http_seen(request: pytest.FixtureRequest, name: str) -> bytes | None:
    seen: dict[str, bytes] = request.getfixturevalue("http_server")[1]
    return seen.get("/" + name)


async def _postgres_row(request: pytest.FixtureRequest, name: str) -> bytes | None:
    connection = await asyncpg.connect(request.getfixturevalue("postgres_server").dsn)
    try:
        value = await connection.fetchval("SELECT value FROM conformance WHERE name = $1", name)
        return value.encode() if value is not None else None
    finally:
        await connection.close()


async def _kafka_record(request: pytest.FixtureRequest, name: str) -> bytes | None:
    consumer = AIOKafkaConsumer(
        request.getfixturevalue("kafka_topic"),
        bootstrap_servers=request.getfixturevalue("kafka_server").address,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(10):
            async for record in consumer:
                if record.key == name.encode():
                    return bytes(record.value)
    finally:
        await consumer.stop()
    return None


def _s3_bucket(request: pytest.FixtureRequest) -> dict[str, str]:
    """aws.s3 metadata on a bucket of the test's own (made once per test, whatever asks first)."""
    server = request.getfixturevalue("s3_server")
    if _BUCKET not in request.node.stash:
        request.node.stash[_BUCKET] = new_bucket_now(server)
    return s3_metadata(server, request.node.stash[_BUCKET])


async def _s3_object(request: pytest.FixtureRequest, name: str) -> bytes | None:
    from botocore.exceptions import ClientError

    metadata = _s3_bucket(request)
    async with s3_client(request.getfixturevalue("s3_server")) as client:
        try:
            answer = await client.get_object(Bucket=metadata["bucket"], Key=name)
        except ClientError:
            return None
        async with answer["Body"] as body:
            data: bytes = await body.read()
            return data


def _wasm_module(request: pytest.FixtureRequest) -> dict[str, str]:
    """bindings.wasm on the upper-casing WASI command (wasm/examples/wat/uppercase.wat)."""
    return {"url": f"file://{build('wat', 'uppercase')}", "timeout": "5s"}


async def _wasm_answer(request: pytest.FixtureRequest, name: str) -> bytes | None:
    """A WASI command's output goes nowhere but its answer: what the write answered, lower-cased
    back (the module upper-cases its input)."""
    answer = request.node.stash.get(_ANSWER, None)
    return answer.data.lower() if answer is not None else None


async def _postgres_table(request: pytest.FixtureRequest) -> None:
    connection = await asyncpg.connect(request.getfixturevalue("postgres_server").dsn)
    try:
        await connection.execute("CREATE TABLE IF NOT EXISTS conformance (name text PRIMARY KEY, value text)")
    finally:
        await connection.close()


_BUCKET = pytest.StashKey[str]()
_ANSWER = pytest.StashKey[InvokeResponse | None]()
OUTPUT = frozenset({Feature.OUTPUT_BINDING})
BOTH = frozenset({Feature.OUTPUT_BINDING, Feature.INPUT_BINDING})

OUTPUTS = (
    Output(
        "localstorage",
        "bindings.localstorage",
        lambda request: {"rootPath": str(request.getfixturevalue("tmp_path") / "root")},
        OUTPUT,
        frozenset({"create", "get", "list", "delete"}),
        lambda name, data: InvokeRequest(data, {"fileName": name}, "create"),
        _file,
        unreachable=lambda request: {"rootPath": "/dev/null/files"},  # under a file: cannot be made
        server_field="rootPath",
        bad_metadata=(("rootPath", None, "rootPath"), ("rootPath", "/sys/x", "rootPath")),
    ),
    Output(
        "http",
        "bindings.http",
        lambda request: {"url": request.getfixturevalue("http_server")[0]},
        OUTPUT,
        frozenset({"create", "get", "head", "post", "put", "patch", "delete", "options", "trace"}),
        lambda name, data: InvokeRequest(data, {"path": name}, "post"),
        _http_seen,
        unreachable=lambda request: {"url": f"http://{LOOPBACK}:{free_port()}"},
        bad_metadata=(
            ("url", None, "url"),
            ("url", "nope", "url"),
            ("maxResponseBodySize", "lots", "maxResponseBodySize"),
        ),
    ),
    Output(
        "redis",
        "bindings.redis",
        lambda request: {"redisHost": request.getfixturevalue("redis_server").address},
        OUTPUT,
        frozenset({"create", "get", "delete", "increment"}),
        lambda name, data: InvokeRequest(data, {"key": name}, "create"),
        _redis_value,
        unreachable=lambda request: {"redisHost": f"{LOOPBACK}:{free_port()}", "dialTimeout": "200ms"},
        server_field="redisHost",
        bad_metadata=(("redisHost", None, "redisHost"), ("redisHost", "nohostport", "redisHost")),
    ),
    Output(
        "postgresql",
        "bindings.postgresql",
        lambda request: {"connectionString": request.getfixturevalue("postgres_server").dsn},
        OUTPUT,
        frozenset({"exec", "query", "close"}),
        lambda name, data: InvokeRequest(
            b"",
            {
                "sql": "INSERT INTO conformance VALUES ($1, $2)",
                "params": orjson.dumps([name, data.decode()]).decode(),
            },
            "exec",
        ),
        _postgres_row,
        unreachable=lambda request: {
            "connectionString": f"host={LOOPBACK} port={free_port()} user=postgres",
            "timeout": "2s",
        },
        server_field="connectionString",
        bad_metadata=(("connectionString", None, "connectionString"),),
    ),
    Output(
        "kafka",
        "bindings.kafka",
        lambda request: {
            "brokers": request.getfixturevalue("kafka_server").address,
            "publishTopic": request.getfixturevalue("kafka_topic"),
        },
        BOTH,
        frozenset({"create"}),
        lambda name, data: InvokeRequest(data, {"partitionKey": name}, "create"),
        _kafka_record,
        unreachable=lambda request: {"brokers": f"{LOOPBACK}:{free_port()}", "dialTimeout": "500ms"},
        server_field="brokers",
        bad_metadata=(
            ("brokers", None, "brokers"),
            ("topics", "t", "consumerGroup"),
            ("authRequired", "maybe", "authRequired"),
        ),
    ),
    Output(
        "aws-s3",
        "bindings.aws.s3",
        _s3_bucket,
        OUTPUT,
        frozenset({"create", "get", "delete", "list", "presign", "bulkGet", "bulkCreate", "bulkDelete"}),
        lambda name, data: InvokeRequest(data, {"key": name}, "create"),
        _s3_object,
        unreachable=lambda request: {
            "endpoint": f"http://{LOOPBACK}:{free_port()}",
            "bucket": "l8-unreachable",
            "accessKey": ACCESS_KEY,
            "secretKey": SECRET_KEY,
        },
        server_field="endpoint",
        bad_metadata=(
            ("bucket", None, "bucket"),
            ("bucket", "l8-no-such-bucket", "bucket"),
            ("decodeBase64", "maybe", "decodeBase64"),
            ("presignTTL", "900", "presignTTL"),
            ("filePath", "/etc/passwd", "filePath"),
        ),
    ),
    Output(
        "wasm",
        "bindings.wasm",
        _wasm_module,
        OUTPUT,
        frozenset({"execute"}),
        lambda name, data: InvokeRequest(data, {}, "execute"),
        _wasm_answer,
        unreachable=lambda request: {"url": "https://example.com/uppercase.wasm"},
        server_field="url",
        bad_metadata=(
            ("url", None, "url"),
            ("url", "file:///nonexistent/uppercase.wasm", "url"),
            ("url", "oci://registry/uppercase", "url"),
            ("url", "/etc/passwd", "url"),  # not wasm
            ("timeout", "soon", "timeout"),
            ("maxMemory", "1Ki", "maxMemory"),
            ("strictSandbox", "true", "strictSandbox"),
        ),
    ),
)


@pytest.fixture
def http_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A real HTTP server (a thread of its own, so fixtures of any kind can reach it) recording each
    request's body by path; ``/status/<n>`` answers n."""
    seen: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen[self.path] = self.rfile.read(length)
            status, body = 200, b"ok"
            if self.path.startswith("/status/"):
                status, body = int(self.path.rsplit("/", 1)[1]), b"refused"
            elif self.path.startswith("/big/"):
                body = b"0123456789" * int(self.path.rsplit("/", 1)[1])
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def kafka_topic() -> str:
    return f"binding-{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=OUTPUTS, ids=[o.id for o in OUTPUTS])
def output(request: pytest.FixtureRequest) -> Output:
    backend: Output = request.param
    return backend


@pytest.fixture
async def binding(output: Output, request: pytest.FixtureRequest) -> AsyncIterator[OutputBinding]:
    if output.id == "postgresql":
        await _postgres_table(request)
    instance: Any = registry.create(output.type)
    await instance.init(output.metadata(request))
    try:
        yield instance
    finally:
        await instance.close()


async def test_directions_and_operations_are_claimed_both_ways(
    output: Output, binding: OutputBinding
) -> None:
    assert frozenset(binding.features()) == output.features
    assert frozenset(binding.operations()) == output.operations
    assert registry.BINDINGS.load(output.type) is type(binding)


async def test_a_write_reaches_the_backend(
    output: Output, binding: OutputBinding, request: pytest.FixtureRequest
) -> None:
    name = f"w-{uuid.uuid4().hex[:8]}"
    answer = await binding.invoke(output.write(name, b"payload-1"))
    assert answer is None or isinstance(answer, InvokeResponse)
    request.node.stash[_ANSWER] = answer
    assert await output.read_back(request, name) == b"payload-1"


async def test_close_is_idempotent_and_later_calls_fail(
    output: Output, request: pytest.FixtureRequest
) -> None:
    if output.id == "postgresql":
        await _postgres_table(request)
    instance: Any = registry.create(output.type)
    await instance.init(output.metadata(request))
    await instance.close()
    await instance.close()
    with pytest.raises(ComponentError):
        await instance.invoke(output.write("after-close", b"x"))


async def test_bad_metadata_names_the_field(output: Output, request: pytest.FixtureRequest) -> None:
    for name, value, named in output.bad_metadata:
        metadata = {**output.metadata(request)}
        if value is None:
            metadata.pop(name, None)
        else:
            metadata[name] = value
        instance: Any = registry.create(output.type)
        with pytest.raises((MetadataError, ComponentInitError)) as failure:
            await instance.init(metadata)
        assert failure.value.field == named, (name, value, failure.value)
        await instance.close()


async def test_an_unreachable_server(output: Output, request: pytest.FixtureRequest) -> None:
    if output.unreachable is None:
        pytest.fail(
            f"{output.id}: the table gives no unreachable metadata"
        )  # every networked backend has one
    instance: Any = registry.create(output.type)
    if output.server_field:
        with pytest.raises(ComponentInitError) as failure:
            await instance.init(output.unreachable(request))
        assert failure.value.field == output.server_field
    else:  # connects per call (http): init succeeds, a call fails as a ComponentError
        await instance.init(output.unreachable(request))
        with pytest.raises(ComponentError):
            await instance.invoke(output.write("x", b"x"))
    await instance.close()


# -- input bindings ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Input:
    id: str
    type: str
    metadata: Metadata
    produce: Callable[[pytest.FixtureRequest, bytes], Awaitable[None]]
    """Makes the source emit one event carrying the bytes (cron ignores them: it ticks)."""
    redelivers: bool
    """Whether an event the handler refused comes again (Kafka) or is dropped (cron's tick)."""
    carries_data: bool
    required: tuple[str, ...] = field(default=())


async def _nothing(request: pytest.FixtureRequest, data: bytes) -> None:
    return None


async def _kafka_publish(request: pytest.FixtureRequest, data: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=request.getfixturevalue("kafka_server").address)
    await producer.start()
    try:
        await producer.send_and_wait(request.getfixturevalue("kafka_topic"), data, key=b"k")
    finally:
        await producer.stop()


INPUTS = (
    Input(
        "cron",
        "bindings.cron",
        lambda request: {"schedule": "@every 1s"},
        _nothing,
        False,
        False,
        ("schedule",),
    ),
    Input(
        "kafka",
        "bindings.kafka",
        lambda request: {
            "brokers": request.getfixturevalue("kafka_server").address,
            "topics": request.getfixturevalue("kafka_topic"),
            "consumerGroup": f"g-{request.getfixturevalue('kafka_topic')}",
            "initialOffset": "oldest",
            "sessionTimeout": "2s",
            "heartbeatInterval": "200ms",
            "consumeRetryInterval": "100ms",
        },
        _kafka_publish,
        True,
        True,
        ("brokers",),
    ),
)


@pytest.fixture(params=INPUTS, ids=[i.id for i in INPUTS])
def source(request: pytest.FixtureRequest) -> Input:
    backend: Input = request.param
    return backend


@pytest.fixture
async def reading(source: Input, request: pytest.FixtureRequest) -> AsyncIterator[InputBinding]:
    instance: Any = registry.create(source.type)
    await instance.init(source.metadata(request))
    try:
        yield instance
    finally:
        await instance.close()


async def test_input_directions(source: Input, reading: InputBinding) -> None:
    assert Feature.INPUT_BINDING in frozenset(reading.features())


async def test_events_reach_the_handler_and_a_refusal_follows_the_sources_rule(
    source: Input, reading: InputBinding, request: pytest.FixtureRequest
) -> None:
    events: list[ReadEvent] = []
    arrived = asyncio.Event()

    async def handler(event: ReadEvent) -> bytes:
        events.append(event)
        arrived.set()
        if len(events) == 1:
            raise RuntimeError("the app refused it")
        return b""

    reader = await reading.read(handler)
    await source.produce(request, b"event-1")
    async with asyncio.timeout(15):
        while len(events) < 2:
            await arrived.wait()
            arrived.clear()
    if source.carries_data:
        assert [e.data for e in events[:2]] == [b"event-1", b"event-1"]  # redelivered
    if source.redelivers:
        assert events[0].data == events[1].data
    await reader.stop()
    count = len(events)
    await asyncio.sleep(1.2)
    assert len(events) == count  # nothing after stop()
    await reader.stop()  # idempotent


async def test_input_required_metadata(source: Input, request: pytest.FixtureRequest) -> None:
    for name in source.required:
        metadata = {k: v for k, v in source.metadata(request).items() if k != name}
        instance: Any = registry.create(source.type)
        with pytest.raises(MetadataError) as failure:
            await instance.init(metadata)
        assert failure.value.field == name
        await instance.close()


# -- backend-specific operations ------------------------------------------------------------------


@pytest.mark.parametrize("output", [o for o in OUTPUTS if o.id == "redis"], ids=["redis"], indirect=True)
async def test_redis_operations(binding: OutputBinding, request: pytest.FixtureRequest) -> None:
    key = f"r-{uuid.uuid4().hex[:8]}"
    assert await binding.invoke(InvokeRequest(b"v", {"key": key, "ttlInSeconds": "100"}, "create")) is None
    got = await binding.invoke(InvokeRequest(b"", {"key": key}, "get"))
    assert got is not None and got.data == b"v"
    client = Redis.from_url(request.getfixturevalue("redis_server").url)
    try:
        assert 90 < await client.ttl(key) <= 100
        await binding.invoke(InvokeRequest(b"", {"key": key + "n"}, "increment"))
        await binding.invoke(InvokeRequest(b"", {"key": key + "n", "ttlInSeconds": "50"}, "increment"))
        assert await client.get(key + "n") == b"2"
        assert 40 < await client.ttl(key + "n") <= 50
    finally:
        await client.aclose()
    await binding.invoke(InvokeRequest(b"", {"key": key}, "delete"))
    missing = await binding.invoke(InvokeRequest(b"", {"key": key}, "get"))
    assert missing is not None and missing.data == b""
    with pytest.raises(BindingError, match="missing key"):
        await binding.invoke(InvokeRequest(b"v", {}, "create"))


@pytest.mark.parametrize(
    "output", [o for o in OUTPUTS if o.id == "postgresql"], ids=["postgresql"], indirect=True
)
async def test_postgres_exec_query_and_close(binding: OutputBinding) -> None:
    table = f"t_{uuid.uuid4().hex[:8]}"
    answer = await binding.invoke(
        InvokeRequest(
            b"", {"sql": f"CREATE TABLE {table} (id int, name text, at timestamptz, n numeric)"}, "exec"
        )
    )
    assert answer is not None and answer.metadata["rows-affected"] == "0"
    for key in ("operation", "sql", "start-time", "end-time", "duration"):
        assert key in answer.metadata
    answer = await binding.invoke(
        InvokeRequest(
            b"",
            {
                "sql": f"INSERT INTO {table} VALUES ($1, $2, now(), 1.5), ($3, $4, now(), 2)",
                "params": '[1, "a", 2, "b"]',
            },
            "exec",
        )
    )
    assert answer is not None and answer.metadata["rows-affected"] == "2"
    answer = await binding.invoke(
        InvokeRequest(
            b"",
            {"sql": f"SELECT id, name, n FROM {table} WHERE id > $1 ORDER BY id", "params": "[0]"},
            "query",
        )
    )
    assert answer is not None and orjson.loads(answer.data) == [[1, "a", 1.5], [2, "b", 2]]
    answer = await binding.invoke(
        InvokeRequest(b"", {"sql": f"SELECT id FROM {table} WHERE id > 5"}, "query")
    )
    assert answer is not None and answer.data == b"[]"
    with pytest.raises(BindingError, match="required metadata not set: sql"):
        await binding.invoke(InvokeRequest(b"", {}, "exec"))
    with pytest.raises(BindingError, match="params"):
        await binding.invoke(InvokeRequest(b"", {"sql": "SELECT 1", "params": "{"}, "query"))
    with pytest.raises(BindingError, match="error executing query"):
        await binding.invoke(InvokeRequest(b"", {"sql": "SELECT * FROM no_such_table"}, "query"))
    assert await binding.invoke(InvokeRequest(b"", {}, "close")) is None
    with pytest.raises(BindingError, match="component is closed"):
        await binding.invoke(InvokeRequest(b"", {"sql": "SELECT 1"}, "query"))


@pytest.mark.parametrize("output", [o for o in OUTPUTS if o.id == "http"], ids=["http"], indirect=True)
async def test_http_status_and_error_if_not_2xx(binding: OutputBinding) -> None:
    with pytest.raises(BindingError, match="received status code 503") as failure:
        await binding.invoke(InvokeRequest(b"", {"path": "status/503"}, "get"))
    assert failure.value.response is not None
    assert failure.value.response.metadata["statusCode"] == "503"
    assert failure.value.response.data == b"refused"
    answer = await binding.invoke(InvokeRequest(b"", {"path": "status/503", "errorIfNot2XX": "false"}, "get"))
    assert answer is not None and answer.metadata["status"] == "503 Service Unavailable"
    answer = await binding.invoke(InvokeRequest(b"", {"path": "big/100000"}, "get"))
    assert answer is not None and answer.data == b"0123456789" * 100_000  # a megabyte, whole


async def test_http_max_response_body_size(http_server: tuple[str, dict[str, bytes]]) -> None:
    instance: Any = registry.create("bindings.http")
    await instance.init({"url": http_server[0], "maxResponseBodySize": "64Ki"})
    try:
        answer = await instance.invoke(InvokeRequest(b"", {"path": "big/100000"}, "get"))
        assert answer is not None and answer.data == (b"0123456789" * 100_000)[: 64 * 1024]
    finally:
        await instance.close()


def test_localstorage_root_is_resolved_and_checked(tmp_path: Path) -> None:
    from components.bindings.localstorage import resolve_root, secure_join

    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    root = resolve_root(str(tmp_path / "alias" / "sub"))
    assert root == (tmp_path / "real" / "sub").resolve()
    for name, expected in [("a/../../b", "b"), ("/etc/passwd", "etc/passwd"), ("./x/./y", "x/y"), ("", "")]:
        assert secure_join(root, name) == root / expected
    with pytest.raises(BindingError):
        secure_join(root, "a\x00b")


async def test_kafka_auth_required_means_sasl(request: pytest.FixtureRequest) -> None:
    instance: Any = registry.create("bindings.kafka")
    with pytest.raises(MetadataError, match="saslUsername is required"):
        await instance.init(
            {"brokers": request.getfixturevalue("kafka_server").address, "authRequired": "true"}
        )
    await instance.close()
