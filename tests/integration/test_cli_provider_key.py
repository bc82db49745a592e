"""Where an API key goes: only to the provider it belongs to, or where --api-key-env names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from longform.cli import main
from longform.emulator.model import uncapped_answer
from longform.local.providers import key_for

pytestmark = pytest.mark.integration

PROMPT = "Write about lamps. [emulator answer_tokens=300]"


def test_the_deepinfra_key_never_goes_to_another_server(
    tmp_path: Path, capsys, monkeypatch, emulator
) -> None:
    """The emulator here requires the key, so a run succeeds only if the key was sent: exported
    DEEPINFRA_API_KEY is not sent to --base-url (the emulator answers 401 "Missing API key"), and
    is when --api-key-env names it."""
    monkeypatch.setenv("DEEPINFRA_API_KEY", "di-secret")
    emulator.configure(api_key="di-secret")
    out = tmp_path / "a.md"
    base = ["run", "--base-url", emulator.base_url, "--model", "longform/emulated-writer", "--prompt", PROMPT]
    assert main([*base, "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "ProviderAuthenticationFailed: Missing API key" in captured.out + captured.err
    assert "di-secret" not in captured.out + captured.err
    assert main([*base, "--out", str(out), "--quiet", "--api-key-env", "DEEPINFRA_API_KEY"]) == 0
    assert out.read_text() == uncapped_answer([{"role": "user", "content": PROMPT}])


def test_key_for(monkeypatch) -> None:
    monkeypatch.setenv("DEEPINFRA_API_KEY", "di")
    monkeypatch.setenv("MY_KEY", "mine")
    assert key_for("https://api.deepinfra.com/v1/openai", None) == "di"
    assert key_for("http://127.0.0.1:8799/v1", None) is None
    assert key_for("http://api.deepinfra.com.evil.example/v1", None) is None
    assert key_for("http://127.0.0.1:8799/v1", "MY_KEY") == "mine"
    assert key_for("http://127.0.0.1:8799/v1", "UNSET_VARIABLE_X") is None
