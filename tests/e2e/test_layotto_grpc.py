"""Layotto's gRPC service (``spec.proto.runtime.v1.Runtime``) on a real ``l8 run``'s gRPC port,
driven by a grpcio client over the stubs generated from routers/grpc/layotto/proto/runtime.proto:
sequencer ids, configuration save/get/delete/subscribe, locks, the RPCs Layotto shares with Dapr
(state, publish, secrets), files streamed both ways in
chunks (with the sidecar's memory bounded), errors with their gRPC codes, the API token, and
UNIMPLEMENTED for Layotto's RPCs l8 does not serve."""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2

from routers.grpc.layotto.proto import runtime_pb2 as pb
from routers.grpc.layotto.proto import runtime_pb2_grpc
from tests.e2e.process import L8Launcher, L8Process, write_component
from tests.e2e.test_files import PeakRss

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[L8Process]:
    workdir = tmp_path_factory.mktemp("l8-layotto-grpc")
    folder = workdir / "resources"
    write_component(folder, "ids", "sequencer.in-memory")
    write_component(folder, "config", "configuration.in-memory")
    write_component(folder, "locks", "lock.in-memory")
    write_component(folder, "files", "file.local", {"rootPath": str(workdir / "root")})
    write_component(folder, "statestore", "state.sqlite", {"connectionString": str(workdir / "state.db")})
    write_component(folder, "pubsub", "pubsub.in-memory")
    (workdir / "secrets.json").write_text('{"api-key": "s3cr3t-layotto"}')
    write_component(
        folder, "vault", "secretstores.local.file", {"secretsFile": str(workdir / "secrets.json")}
    )
    launcher = L8Launcher(workdir)
    try:
        yield launcher(app_id="layotto-app", resources=[folder])
    finally:
        launcher.close()


@pytest.fixture(scope="module")
def runtime(sidecar: L8Process) -> Iterator[runtime_pb2_grpc.RuntimeStub]:
    with grpc.insecure_channel(sidecar.grpc_address) as channel:
        yield runtime_pb2_grpc.RuntimeStub(channel)


def _code(call: object) -> grpc.StatusCode:
    assert isinstance(call, grpc.RpcError)
    code: grpc.StatusCode = call.code()
    return code


# -- sequencer -------------------------------------------------------------------------------------


@pytest.mark.parametrize("increment", [pb.SequencerOptions.WEAK, pb.SequencerOptions.STRONG])
def test_next_ids_increase(runtime: runtime_pb2_grpc.RuntimeStub, increment: int) -> None:
    key = f"orders-{increment}"
    request = pb.GetNextIdRequest(store_name="ids", key=key, options=pb.SequencerOptions(increment=increment))
    ids = [runtime.GetNextId(request).next_id for _ in range(20)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 20
    assert ids[0] >= 1


def test_sequencer_errors(runtime: runtime_pb2_grpc.RuntimeStub) -> None:
    with pytest.raises(grpc.RpcError) as empty_key:
        runtime.GetNextId(pb.GetNextIdRequest(store_name="ids", key=""))
    assert _code(empty_key.value) is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as unknown:
        runtime.GetNextId(pb.GetNextIdRequest(store_name="nope", key="k"))
    assert _code(unknown.value) is grpc.StatusCode.INVALID_ARGUMENT
    assert "nope" in (unknown.value.details() or "")


# -- configuration ---------------------------------------------------------------------------------


def test_configuration_saved_read_and_deleted(runtime: runtime_pb2_grpc.RuntimeStub) -> None:
    items = [
        pb.ConfigurationItem(key="timeout", content="30s", group="web", label="prod", tags={"team": "a"}),
        pb.ConfigurationItem(key="retries", content="3", group="web", label="prod"),
    ]
    assert isinstance(
        runtime.SaveConfiguration(pb.SaveConfigurationRequest(store_name="config", items=items)),
        empty_pb2.Empty,
    )
    got = runtime.GetConfiguration(
        pb.GetConfigurationRequest(
            store_name="config", group="web", label="prod", keys=["timeout", "retries"]
        )
    )
    by_key = {item.key: item for item in got.items}
    assert by_key["timeout"].content == "30s"
    assert (by_key["timeout"].group, by_key["timeout"].label) == ("web", "prod")
    assert dict(by_key["timeout"].tags) == {"team": "a"}
    assert by_key["retries"].content == "3"
    # another group and label hold nothing of these
    other = runtime.GetConfiguration(pb.GetConfigurationRequest(store_name="config", keys=["timeout"]))
    assert list(other.items) == []

    runtime.DeleteConfiguration(
        pb.DeleteConfigurationRequest(store_name="config", group="web", label="prod", keys=["retries"])
    )
    left = runtime.GetConfiguration(
        pb.GetConfigurationRequest(
            store_name="config", group="web", label="prod", keys=["timeout", "retries"]
        )
    )
    assert [item.key for item in left.items] == ["timeout"]


def test_configuration_errors(runtime: runtime_pb2_grpc.RuntimeStub) -> None:
    with pytest.raises(grpc.RpcError) as unknown:
        runtime.GetConfiguration(pb.GetConfigurationRequest(store_name="nope", keys=["a"]))
    assert _code(unknown.value) is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as no_items:
        runtime.SaveConfiguration(pb.SaveConfigurationRequest(store_name="config"))
    assert _code(no_items.value) is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as no_keys:
        runtime.DeleteConfiguration(pb.DeleteConfigurationRequest(store_name="config"))
    assert _code(no_keys.value) is grpc.StatusCode.INVALID_ARGUMENT


def test_configuration_subscription_streams_changes(runtime: runtime_pb2_grpc.RuntimeStub) -> None:
    done = threading.Event()

    def requests() -> Iterator[pb.SubscribeConfigurationRequest]:
        yield pb.SubscribeConfigurationRequest(store_name="config", app_id="a1", keys=["flag"])
        done.wait(30)  # the stream stays open while the test reads changes

    call = runtime.SubscribeConfiguration(requests())
    answers: queue.Queue[pb.SubscribeConfigurationResponse] = queue.Queue()

    def read() -> None:
        try:
            for answer in call:
                answers.put(answer)
        except grpc.RpcError:
            pass  # cancelled at the end

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        first = None
        for attempt in range(50):  # the subscription starts once its request is read
            runtime.SaveConfiguration(
                pb.SaveConfigurationRequest(
                    store_name="config", items=[pb.ConfigurationItem(key="flag", content=f"on-{attempt}")]
                )
            )
            try:
                first = answers.get(timeout=0.2)
                break
            except queue.Empty:
                continue
        assert first is not None, "no change arrived"
        assert (first.store_name, first.app_id) == ("config", "a1")
        assert first.items[0].key == "flag"
        assert first.items[0].content.startswith("on-")
        assert (first.items[0].group, first.items[0].label) == ("default", "default")
        while not answers.empty():
            answers.get_nowait()
        runtime.DeleteConfiguration(pb.DeleteConfigurationRequest(store_name="config", keys=["flag"]))
        removed = answers.get(timeout=5)
        assert removed.items[0].key == "flag"
        assert removed.items[0].content == ""
    finally:
        done.set()
        call.cancel()
        reader.join(5)


def test_configuration_subscription_refused_ends_the_stream(runtime: runtime_pb2_grpc.RuntimeStub) -> None:
    call = runtime.SubscribeConfiguration(
        iter([pb.SubscribeConfigurationRequest(store_name="nope", keys=["k"])])
    )
    with pytest.raises(grpc.RpcError) as refused:
        list(call)
    assert _code(refused.value) is grpc.StatusCode.INVALID_ARGUMENT


# -- lock ------------------------------------------------------------------------------------------


def test_locks(runtime: runtime_pb2_grpc.RuntimeStub) -> None:
    take = pb.TryLockRequest(store_name="locks", resource_id="order-1", lock_owner="me", expire=30)
    assert runtime.TryLock(take).success
    other = pb.TryLockRequest(store_name="locks", resource_id="order-1", lock_owner="you", expire=30)
    assert not runtime.TryLock(other).success
    stranger = pb.UnlockRequest(store_name="locks", resource_id="order-1", lock_owner="you")
    assert runtime.Unlock(stranger).status == pb.UnlockResponse.LOCK_BELONG_TO_OTHERS
    mine = pb.UnlockRequest(store_name="locks", resource_id="order-1", lock_owner="me")
    assert runtime.Unlock(mine).status == pb.UnlockResponse.SUCCESS
    assert runtime.Unlock(mine).status == pb.UnlockResponse.LOCK_UNEXIST
    with pytest.raises(grpc.RpcError) as no_expiry:
        runtime.TryLock(pb.TryLockRequest(store_name="locks", resource_id="r", lock_owner="me"))
    assert _code(no_expiry.value) is grpc.StatusCode.INVALID_ARGUMENT


# -- files -----------------------------------------------------------------------------------------


def _chunks(size: int, chunk: int = 256 * 1024) -> Iterator[bytes]:
    """``size`` pseudo-random bytes (a hash chain: nothing held but one chunk)."""
    seed = b"layotto"
    sent = 0
    while sent < size:
        block = hashlib.shake_256(seed + sent.to_bytes(8, "big")).digest(min(chunk, size - sent))
        sent += len(block)
        yield block


def _put(
    runtime: runtime_pb2_grpc.RuntimeStub,
    name: str,
    size: int,
    metadata: dict[str, str] | None = None,
    chunk: int = 256 * 1024,
) -> str:
    digest = hashlib.sha256()

    def requests() -> Iterator[pb.PutFileRequest]:
        for index, block in enumerate(_chunks(size, chunk)):
            digest.update(block)
            if index == 0:
                yield pb.PutFileRequest(store_name="files", name=name, data=block, metadata=metadata or {})
            else:
                yield pb.PutFileRequest(data=block)

    runtime.PutFile(requests())
    return digest.hexdigest()


def test_files_put_listed_read_and_deleted(runtime: runtime_pb2_grpc.RuntimeStub) -> None:
    sent = _put(runtime, "docs/a.bin", 3 * MiB + 17, {"owner": "ops"})
    _put(runtime, "docs/b.bin", 10)
    digest, sizes = hashlib.sha256(), []
    for answer in runtime.GetFile(pb.GetFileRequest(store_name="files", name="docs/a.bin")):
        sizes.append(len(answer.data))
        digest.update(answer.data)
    assert digest.hexdigest() == sent
    assert sum(sizes) == 3 * MiB + 17
    assert max(sizes) <= 100 * 1024  # Layotto's chunk size
    assert len(sizes) > 30

    meta = runtime.GetFileMeta(
        pb.GetFileMetaRequest(request=pb.FileRequest(store_name="files", name="docs/a.bin"))
    )
    assert meta.size == 3 * MiB + 17
    assert meta.last_modified.endswith("Z")
    assert list(meta.response.metadata["owner"].value) == ["ops"]

    page = runtime.ListFile(
        pb.ListFileRequest(request=pb.FileRequest(store_name="files", name="docs/"), page_size=1)
    )
    assert [info.file_name for info in page.files] == ["docs/a.bin"]
    assert page.is_truncated
    rest = runtime.ListFile(
        pb.ListFileRequest(request=pb.FileRequest(store_name="files", name="docs/"), marker=page.marker)
    )
    assert [(info.file_name, info.size) for info in rest.files] == [("docs/b.bin", 10)]
    assert not rest.is_truncated

    runtime.DelFile(pb.DelFileRequest(request=pb.FileRequest(store_name="files", name="docs/b.bin")))
    with pytest.raises(grpc.RpcError) as gone:
        runtime.GetFileMeta(
            pb.GetFileMetaRequest(request=pb.FileRequest(store_name="files", name="docs/b.bin"))
        )
    assert _code(gone.value) is grpc.StatusCode.NOT_FOUND


def test_file_errors(runtime: runtime_pb2_grpc.RuntimeStub) -> None:
    with pytest.raises(grpc.RpcError) as missing:
        list(runtime.GetFile(pb.GetFileRequest(store_name="files", name="never.txt")))
    assert _code(missing.value) is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as climbing:
        runtime.PutFile(iter([pb.PutFileRequest(store_name="files", name="../out.txt", data=b"x")]))
    assert _code(climbing.value) is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as unknown:
        runtime.DelFile(pb.DelFileRequest(request=pb.FileRequest(store_name="nope", name="a")))
    assert _code(unknown.value) is grpc.StatusCode.INVALID_ARGUMENT
    assert isinstance(runtime.PutFile(iter([])), empty_pb2.Empty)  # an empty stream stores nothing


def test_big_files_stream_with_bounded_memory(
    runtime: runtime_pb2_grpc.RuntimeStub, sidecar: L8Process
) -> None:
    size = 512 * MiB  # l8 grows by about 20 MiB for 512 MiB and for 1 GiB alike
    with PeakRss(sidecar.pid) as peak:
        before = peak.peak
        sent = _put(runtime, "big.bin", size, chunk=MiB)
        digest = hashlib.sha256()
        for answer in runtime.GetFile(pb.GetFileRequest(store_name="files", name="big.bin")):
            digest.update(answer.data)
    assert digest.hexdigest() == sent
    assert peak.peak - before < 50 * MiB, f"l8 grew by {(peak.peak - before) / MiB:.0f} MiB"


# -- the RPCs shared with Dapr ---------------------------------------------------------------------


def test_state_with_etags_and_transactions(runtime: runtime_pb2_grpc.RuntimeStub) -> None:
    store = "statestore"
    runtime.SaveState(pb.SaveStateRequest(store_name=store, states=[pb.StateItem(key="k1", value=b"v1")]))
    got = runtime.GetState(pb.GetStateRequest(store_name=store, key="k1"))
    assert got.data == b"v1"
    assert got.etag
    stale = pb.StateItem(key="k1", value=b"v2", etag=pb.Etag(value="not-" + got.etag))
    with pytest.raises(grpc.RpcError) as mismatch:
        runtime.SaveState(pb.SaveStateRequest(store_name=store, states=[stale]))
    assert _code(mismatch.value) is grpc.StatusCode.ABORTED
    runtime.ExecuteStateTransaction(
        pb.ExecuteStateTransactionRequest(
            storeName=store,
            operations=[
                pb.TransactionalStateOperation(
                    operationType="upsert", request=pb.StateItem(key="k2", value=b"two")
                ),
                pb.TransactionalStateOperation(operationType="delete", request=pb.StateItem(key="k1")),
            ],
        )
    )
    bulk = runtime.GetBulkState(pb.GetBulkStateRequest(store_name=store, keys=["k1", "k2"]))
    assert {item.key: item.data for item in bulk.items} == {"k1": b"", "k2": b"two"}
    runtime.DeleteState(pb.DeleteStateRequest(store_name=store, key="k2"))
    runtime.DeleteBulkState(pb.DeleteBulkStateRequest(store_name=store, states=[pb.StateItem(key="k1")]))
    assert runtime.GetState(pb.GetStateRequest(store_name=store, key="k2")).data == b""
    with pytest.raises(grpc.RpcError) as unknown:
        runtime.GetState(pb.GetStateRequest(store_name="nope", key="k"))
    assert _code(unknown.value) is grpc.StatusCode.INVALID_ARGUMENT


def test_publish_and_secrets(runtime: runtime_pb2_grpc.RuntimeStub) -> None:
    runtime.PublishEvent(pb.PublishEventRequest(pubsub_name="pubsub", topic="orders", data=b"{}"))
    with pytest.raises(grpc.RpcError) as no_pubsub:
        runtime.PublishEvent(pb.PublishEventRequest(pubsub_name="nope", topic="orders", data=b"{}"))
    assert _code(no_pubsub.value) is grpc.StatusCode.INVALID_ARGUMENT
    secret = runtime.GetSecret(pb.GetSecretRequest(store_name="vault", key="api-key"))
    assert dict(secret.data) == {"api-key": "s3cr3t-layotto"}
    every = runtime.GetBulkSecret(pb.GetBulkSecretRequest(store_name="vault"))
    assert dict(every.data["api-key"].secrets) == {"api-key": "s3cr3t-layotto"}


# -- the door --------------------------------------------------------------------------------------


def test_rpcs_l8_does_not_serve_are_unimplemented(sidecar: L8Process) -> None:
    with grpc.insecure_channel(sidecar.grpc_address) as channel:
        say_hello = channel.unary_unary("/spec.proto.runtime.v1.Runtime/SayHello")
        with pytest.raises(grpc.RpcError) as refused:
            say_hello(b"")
    assert _code(refused.value) is grpc.StatusCode.UNIMPLEMENTED


def test_api_token_guards_layottos_service(l8: L8Launcher, tmp_path: Path) -> None:
    folder = tmp_path / "resources"
    write_component(folder, "ids", "sequencer.in-memory")
    sidecar = l8(app_id="guarded", resources=[folder], env={"DAPR_API_TOKEN": "t0ken"})
    request = pb.GetNextIdRequest(store_name="ids", key="k")
    with grpc.insecure_channel(sidecar.grpc_address) as channel:
        runtime = runtime_pb2_grpc.RuntimeStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            runtime.GetNextId(request)
        assert _code(refused.value) is grpc.StatusCode.UNAUTHENTICATED
        assert runtime.GetNextId(request, metadata=[("dapr-api-token", "t0ken")]).next_id == 1
