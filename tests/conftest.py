"""Shared by every suite: a local command never writes its state (``.longform/``) into the repo."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _local_state_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path_factory.mktemp("longform-state")
    monkeypatch.setenv("LONGFORM_STATE_DIR", str(state))
    return state
