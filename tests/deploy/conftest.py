"""Fixtures for the deploy tests: each overlay rendered once per session, and a
throw-away copy of the kustomize tree for tests that break it on purpose."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.render import KUSTOMIZE_ROOT, OVERLAYS, render

Doc = dict[str, Any]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Doc]]:
    """overlay name -> rendered documents, for `base` and every overlay."""
    result = {"base": render(KUSTOMIZE_ROOT / "base")}
    for overlay in OVERLAYS:
        result[overlay] = render(KUSTOMIZE_ROOT / "overlays" / overlay)
    return result


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """A private copy of deploy/kustomize to edit and render."""
    target = tmp_path / "kustomize"
    shutil.copytree(KUSTOMIZE_ROOT, target)
    return target
