"""services/json_body.py: one decoder and encoder for request bodies, as deep as Go's encoding/json
reads (10,000 levels) and no deeper, byte for byte what orjson writes, and bytes of their size."""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import orjson
import pytest

from services import json_body
from services import state_requests as decode
from services.json_body import JsonBodyError, JsonRefused

VALUES: list[Any] = [
    {"a": [1, -2.5, 1e100, 'x"y\n', "ü\u2028", True, False, None], "é": {}, "b": []},
    [[], {}, [[]], {"k": {"k": [0, 12345678901234567]}}],
    "s",
    0,
]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("sort_keys", [False, True])
def test_the_deep_writer_writes_what_orjson_writes(value: Any, sort_keys: bool) -> None:
    option = orjson.OPT_SORT_KEYS if sort_keys else None
    assert json_body._write(value, sort_keys) == orjson.dumps(value, option=option)


@pytest.mark.parametrize("value", VALUES)
def test_the_deep_parser_reads_what_orjson_reads(value: Any) -> None:
    text = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    assert json_body._Parser(text, exact=False).parse(0) == (value, len(text))


@pytest.mark.parametrize("depth", [255, 900, 1025, 5_000, 10_000])
def test_json_as_deep_as_go_reads_round_trips(depth: int) -> None:
    body = b'{"a":[' * (depth // 2) + b"1.10" + b"]}" * (depth // 2)
    assert json_body.dumps(json_body.loads(body)) == body.replace(b"1.10", b"1.1")
    assert json_body.dumps(json_body.loads_exact(body)) == body
    assert json_body.first_value(b" " + body + b" trailing") == body


@pytest.mark.parametrize("depth", [10_001, 100_000, 2_000_000])
def test_deeper_json_is_refused_quickly(depth: int) -> None:
    body = b"[" * depth + b"]" * depth
    for read in (json_body.loads, json_body.loads_exact, json_body.first_value):
        started = time.monotonic()
        with pytest.raises(JsonRefused, match="exceeded max depth"):
            read(body)
        assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("body", [b'["\xff"]', b'{"caf\xe9": 1}', b"\xc3"])
def test_invalid_utf8_is_refused(body: bytes) -> None:
    for read in (json_body.loads, json_body.loads_exact, json_body.first_value):
        with pytest.raises(JsonRefused):
            read(body)


@pytest.mark.parametrize(
    "bad", [b"[1,]", b"[1", b'{"a" 1}', b'{"a":1,}', b"[NaN]", b"[01]", b"[tru]", b'["\x01"]']
)
def test_what_is_not_json_deep_down_is_not_json(bad: bytes) -> None:
    deep = b"[" * 2_000 + bad + b"]" * 2_000
    for read in (json_body.loads, json_body.loads_exact):
        with pytest.raises(JsonBodyError) as raised:
            read(deep)
        assert not isinstance(raised.value, JsonRefused)


def test_bytes_kept_are_the_size_of_their_value() -> None:
    """orjson hands back a 4 KiB buffer for any small result: 150,000 saved items held 600 MB."""
    tracemalloc.start()
    try:
        kept = [json_body.dumps(n) for n in range(1_000)]
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current < 100 * len(kept)


def test_a_big_save_holds_a_small_multiple_of_its_body() -> None:
    """About 850 bytes of Python objects an item at the peak, for 34 bytes of JSON; it was 4 KiB more
    an item, and the decoded items and their requests were held together."""
    body = orjson.dumps([{"key": f"{n:x}", "value": {"n": n}} for n in range(20_000)])
    tracemalloc.start()
    try:
        requests = list(decode.save_items(json_body.loads(body), lambda key: f"app||{key}", {}))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(requests) == 20_000
    assert peak < 30 * len(body), f"{peak / len(body):.1f} times the body"
