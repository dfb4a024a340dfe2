"""Packaging and import hygiene."""

from __future__ import annotations

import importlib.metadata
import subprocess

import daemon
from tests.support.servers import REPO_ROOT, project_env, python_cmd


def test_daemon_package_is_ours_and_python_daemon_is_absent() -> None:
    # `daemon` is also python-daemon's module name; installing it would shadow us.
    assert daemon.__file__ is not None
    assert str(REPO_ROOT) in daemon.__file__
    names = {d.metadata["Name"].lower() for d in importlib.metadata.distributions()}
    assert "python-daemon" not in names


def test_daemon_never_imports_textual_or_typer() -> None:
    code = (
        "import sys, daemon.app, daemon.__main__; "
        "bad = [m for m in ('textual', 'typer') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run(
        python_cmd("-c", code), env=project_env(), capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
