from __future__ import annotations

# Real daemon processes (python -m daemon): the e2e tier's fixtures, not a copy.
from tests.e2e.conftest import start_daemon, telegram  # noqa: F401
