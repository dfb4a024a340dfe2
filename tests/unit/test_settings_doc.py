"""docs/configuration.md is generated from the Settings object and kept in sync."""

from __future__ import annotations

import dataclasses

from daemon.settings import Settings
from daemon.settings_doc import field_docstrings, render
from tests.support.servers import REPO_ROOT

DOC = REPO_ROOT / "docs" / "configuration.md"


def test_configuration_doc_is_in_sync_with_settings() -> None:
    assert DOC.read_text() == render(), (
        "docs/configuration.md is out of date: run "
        "`.venv/bin/python -m daemon.settings_doc > docs/configuration.md`"
    )


def test_every_setting_is_documented() -> None:
    docs = field_docstrings(Settings)
    undocumented = [f.name for f in dataclasses.fields(Settings) if not docs.get(f.name)]
    assert undocumented == []
    assert "| `agent_model_api_key` | `OTM_AGENT_MODEL_API_KEY` | unset | **Secret.**" in render()
