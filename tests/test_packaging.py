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


def _dockerfile_runs() -> list[str]:
    text = (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip().startswith("RUN ")]


def test_constraints_pin_exactly_the_tested_runtime_dependencies() -> None:
    """constraints.txt is what scripts/constraints.py prints for this environment: every
    runtime dependency (and nothing of the TUI or the dev tools) at its tested version."""
    out = subprocess.run(
        python_cmd(str(REPO_ROOT / "scripts" / "constraints.py")),
        env=project_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert (REPO_ROOT / "constraints.txt").read_text() == out.stdout
    pins = [line for line in out.stdout.splitlines() if line and not line.startswith("#")]
    assert pins and all("==" in line for line in pins)
    names = {line.split("==")[0] for line in pins}
    assert {"aiohttp", "kubernetes-asyncio", "redis", "boto3"} <= names
    assert not names & {"textual", "pytest", "moto", "ruff", "mypy"}


def test_the_server_image_installs_the_pinned_runtime_without_extras() -> None:
    (install,) = [run for run in _dockerfile_runs() if "pip install" in run]
    assert "--constraint constraints.txt" in install
    assert install.endswith(" .")  # the project itself, no [extras]
    requirements = importlib.metadata.requires("otm") or []
    base = [r for r in requirements if "extra ==" not in r]
    assert not [r for r in base if r.lower().startswith("textual")]
