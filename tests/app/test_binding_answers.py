"""services/bindings/answers.py ``go_json``: an input binding answer's data as daprd re-encodes it
(Go's ``json.Unmarshal`` into an ``interface{}``, then ``json.Marshal``) before sending it on."""

from __future__ import annotations

import pytest

from services.bindings.answers import go_json


@pytest.mark.parametrize(
    ("data", "sent"),
    [
        (b'{"b": 2, "a": {"d": 1.0, "c": [1.5, 2e0]}}', b'{"a":{"c":[1.5,2],"d":1},"b":2}'),
        (b'"<a & b>"', b'"\\u003ca \\u0026 b\\u003e"'),
        ('"\u2028"'.encode(), b'"\\u2028"'),
        (b"[true, null]", b"[true,null]"),
        (b"not json", b"null"),
        (b"", b"null"),
        (b"12", b"12"),
    ],
)
def test_data_is_what_go_writes_of_what_it_read(data: bytes, sent: bytes) -> None:
    assert go_json(data) == sent
