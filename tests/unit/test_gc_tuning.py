"""The daemon's garbage-collector tuning (Settings.gc_young_threshold)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

import daemon.__main__ as daemon_main
from daemon.settings import Settings


@pytest.fixture(autouse=True)
def python_thresholds() -> Iterator[tuple[int, int, int]]:
    """The test process's own thresholds, put back after each test."""
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


def test_young_threshold_is_set_and_older_generations_keep_theirs(
    python_thresholds: tuple[int, int, int],
) -> None:
    daemon_main.tune_garbage_collector(12_345)
    assert gc.get_threshold() == (12_345, *python_thresholds[1:])


def test_zero_keeps_pythons_thresholds(python_thresholds: tuple[int, int, int]) -> None:
    daemon_main.tune_garbage_collector(0)
    assert gc.get_threshold() == python_thresholds


def test_the_daemon_applies_its_setting_before_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, int, int]] = []

    async def serve(settings: Settings) -> int:
        seen.append(gc.get_threshold())
        return 0

    # Only the start-up around serve() runs: no listener, no umask change in this process.
    monkeypatch.setattr(daemon_main, "serve", serve)
    monkeypatch.setattr(daemon_main, "setup_logging", lambda settings: None)
    monkeypatch.setattr(daemon_main, "restrict_process_umask", lambda: 0)
    assert daemon_main.main(Settings(data_dir=tmp_path, gc_young_threshold=4_321)) == 0
    assert seen and seen[0][0] == 4_321
