"""End-to-end tests: real ``l8 run`` processes (see process.py) and the session's real servers."""

from tests.e2e.process import l8  # noqa: F401  (the fixture, shared with tests/compat)
