"""Shared by the conformance suites of every building block."""

from __future__ import annotations

import uuid

import pytest


class KeySpace:
    """Storage keys private to one test, so suites share one real server without flushing it."""

    def __init__(self) -> None:
        self.prefix = f"conformance-{uuid.uuid4().hex[:12]}||"

    def __call__(self, name: str) -> str:
        return self.prefix + name


@pytest.fixture
def keys() -> KeySpace:
    return KeySpace()
