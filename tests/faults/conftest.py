"""Fault tests reuse the end-to-end harness: a real ``python -m daemon`` per test,
the fake Telegram Bot API in the test's loop, real agent processes."""

from __future__ import annotations

# Re-exported fixtures (pytest finds fixtures by name in a conftest's namespace).
from tests.e2e.conftest import daemon, start_daemon, telegram  # noqa: F401
