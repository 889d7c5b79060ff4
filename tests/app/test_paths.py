from __future__ import annotations

import pytest

from app.middleware import clean_path


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("/v1.0/metadata/", "/v1.0/metadata"),
        ("//v1.0///state//s/k", "/v1.0/state/s/k"),
        ("/", "/"),
        ("//", "/"),
    ],
)
def test_clean_path(raw: str, clean: str) -> None:
    assert clean_path(raw) == clean
