"""TCP copy's queue, writer and dump format without a server (end to end: tests/e2e/test_tcp_copy.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.errors import SettingsError
from mesh.settings import parse_settings
from mesh.tcpcopy import CopyPolicy, TcpCopy, TcpCopySettings
from mesh.tcpcopy import parse_policy as policy_of
from mesh.tcpcopy.dumpfile import MAGIC, REQUEST, Record, dump_files, read_records


def parse_policy(raw: dict[str, object], data_dir: Path) -> CopyPolicy:
    """The policy of ``tcp_copy`` as the settings file gives it."""
    return policy_of(parse_settings(TcpCopySettings, raw, "tcp_copy"), data_dir)


def test_a_full_queue_drops_and_counts_instead_of_waiting(tmp_path: Path) -> None:
    copier = TcpCopy(parse_policy({"switch": "ON", "queue_records": 3, "queue_bytes": "1Ki", "dir": str(tmp_path)},
                                  tmp_path))  # fmt: skip
    for _ in range(5):
        copier.offer(REQUEST, 3500, 1, b"x")
    copier.offer(REQUEST, 3500, 2, b"y" * 2000)  # over the byte budget on its own
    assert copier.counters["dropped"] == 3


async def test_records_survive_the_round_trip_and_a_cut_short_file_ends_cleanly(tmp_path: Path) -> None:
    copier = TcpCopy(parse_policy({"switch": "ON", "dir": str(tmp_path)}, tmp_path))
    await copier.start()
    payload = bytes(range(256))
    copier.offer(REQUEST, 3500, 7, payload)
    await copier.aclose()  # what is queued is written at close
    (path,) = dump_files(tmp_path)
    (record,) = list(read_records(path))
    assert (record.kind, record.port, record.connection, record.payload) == (REQUEST, 3500, 7, payload)
    path.write_bytes(path.read_bytes() + Record(REQUEST, 1, 1, 1, 1, b"abc").encode()[:-1])  # torn write
    assert len(list(read_records(path))) == 1
    assert path.read_bytes().startswith(MAGIC)


def test_off_by_default_and_layotto_keys_validated(tmp_path: Path) -> None:
    policy = parse_policy({}, tmp_path)
    assert not policy.enabled and policy.folder == tmp_path / "tcpcopy"
    assert parse_policy({"switch": "ON", "interval": 30, "duration": 10}, tmp_path).duration == 10
    with pytest.raises(SettingsError, match=r"tcp_copy\.switch"):
        parse_policy({"switch": "maybe"}, tmp_path)
    with pytest.raises(SettingsError, match=r"tcp_copy\.mem_max_rate"):
        parse_policy({"mem_max_rate": 0}, tmp_path)


def test_replay_keeps_the_requests_before_an_upgrade_and_skips_100_continue(tmp_path: Path) -> None:
    from mesh.tcpcopy.dumpfile import OPENED, RESPONSE
    from mesh.tcpcopy.replay import load_connections

    sent = (
        b"POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi"
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x00"
    )
    answered = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    path = tmp_path / "one.dump"
    records = [Record(OPENED, 1, 9, 1, 1, b"c>s"), Record(REQUEST, 1, 9, 1, 2, sent),
               Record(RESPONSE, 1, 9, 1, 3, answered)]  # fmt: skip
    path.write_bytes(MAGIC + b"".join(record.encode() for record in records))
    (connection,) = load_connections([path])
    first = connection[0]
    assert (first.method, first.target, first.body, first.recorded_status) == ("POST", "/a", b"hi", 201)
    assert ("Expect", "100-continue") not in first.headers
