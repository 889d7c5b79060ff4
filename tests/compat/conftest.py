"""Compatibility tests: the real Dapr SDKs against real l8 processes."""

from tests.e2e.process import l8  # noqa: F401  (the fixture: started l8 processes, always cleaned up)
