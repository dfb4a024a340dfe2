"""What the docs claim about the production backends, checked against the code on a
moto server: the daemon creates a missing table and bucket when its credentials allow
it (docs/setup-guide.md), and the S3 layout the settings and the guide describe is the
one the state store writes."""

from __future__ import annotations

import shlex
from pathlib import Path

import boto3
import pytest

from daemon.adapters.registry_dynamodb import DynamoRegistry
from daemon.adapters.state_keys import HISTORY_PREFIX, SNAPSHOT_KEY
from daemon.adapters.state_s3 import S3StateStore
from daemon.agent.command import resolve_agent_command
from daemon.settings import Settings
from daemon.settings_doc import field_docstrings
from tests.support.servers import REPO_ROOT

GUIDE = REPO_ROOT / "docs" / "setup-guide.md"


def _source_of_pod_scripts() -> str:
    return (REPO_ROOT / "daemon" / "kube" / "pod_scripts.py").read_text()


def _guide() -> str:
    return " ".join(GUIDE.read_text().split())  # sentences across line breaks


async def test_the_daemon_creates_a_missing_table_and_bucket_as_the_guide_says(
    moto_url: str,
) -> None:
    guide = _guide()
    assert "creates itself when it finds none" in guide
    assert "The daemon creates a missing bucket when its credentials allow it" in guide
    assert "does not create" not in guide
    registry = await DynamoRegistry.open("claims-table", "us-east-1", moto_url)
    store = await S3StateStore.open("claims-bucket", "us-east-1", moto_url)
    await registry.close()
    await store.close()
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_url)
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_url)
    try:
        assert "claims-table" in client.list_tables()["TableNames"]
        assert "claims-bucket" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    finally:
        client.close()
        s3.close()


async def test_the_documented_state_layout_is_the_written_one(
    moto_url: str, tmp_path: Path
) -> None:
    src = tmp_path / "state"
    (src / "workspace").mkdir(parents=True)
    (src / "workspace" / "notes.md").write_text("hello")
    store = await S3StateStore.open("layout-bucket", "us-east-1", moto_url)
    try:
        await store.save_snapshot("alice", src)
        written = await store.list("alice")
    finally:
        await store.close()
    [history, latest] = written
    assert history.startswith(HISTORY_PREFIX) and latest == SNAPSHOT_KEY
    documented = " ".join(field_docstrings(Settings)["s3_bucket"].split())
    assert f"``{SNAPSHOT_KEY}``" in documented and f"``{HISTORY_PREFIX}``" in documented
    assert f"tenants/{{id}}/{SNAPSHOT_KEY}" in _guide()
    assert f"tenants/{{id}}/{HISTORY_PREFIX}" in _guide()
    # The per-file layout is what Kubernetes pods sync (daemon/kube/pod_scripts.py).
    scripts = _source_of_pod_scripts()
    assert 'state/"' in scripts and 'workspace/"' in scripts
    assert "``state/`` and ``workspace/`` files (Kubernetes agents" in documented


def _readme() -> str:
    return (REPO_ROOT / "README.md").read_text()


def test_readme_keeps_two_commands_and_both_exist() -> None:
    block = _readme().split("## Two commands", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]
    assert commands == ["./scripts/run-local.sh", "./scripts/test.sh"]
    for command in commands:
        assert (REPO_ROOT / command).stat().st_mode & 0o111
    assert "../shared" not in _readme()


def test_readme_openclaw_command_resolves_as_written() -> None:
    """The README's OTM_AGENT_COMMAND, relative paths and all, names files that exist
    once resolved against the repository (where run-local.sh starts the daemon)."""
    section = _readme().split("## Running a real OpenClaw locally", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    command = shlex.split(block.split("OTM_AGENT_COMMAND=", 1)[1])[0]
    words = resolve_agent_command(shlex.split(command), REPO_ROOT)
    assert words[-1] == "gateway"
    paths = [w for w in words if "/" in w]
    assert len(paths) == 2 and all(Path(p).is_absolute() for p in paths)
    if not (REPO_ROOT / ".tools" / "openclaw").exists():
        pytest.skip("the pinned OpenClaw is not installed (scripts/install-openclaw.sh)")
    assert all(Path(p).exists() for p in paths)
