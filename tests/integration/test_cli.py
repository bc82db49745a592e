"""``longform run``: the local runner's contract (later issues and the benchmarks depend on it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from longform.cli import main
from longform.emulator.model import uncapped_answer

pytestmark = pytest.mark.integration


def test_run_json_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    prompt = "Write a 3,000-word essay on tide mills."
    out = tmp_path / "essay.md"
    code = main(["run", "--prompt", prompt, "--max-tokens-per-request", "1000", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0
    summary = json.loads(captured.out.strip().splitlines()[-1])
    for key in (
        "status",
        "finish_reason",
        "chunks",
        "prompt_tokens",
        "output_tokens",
        "state_transitions",
        "output_path",
    ):
        assert key in summary
    assert summary["status"] == "succeeded"
    assert summary["finish_reason"] == "stop"
    assert summary["chunks"] == 3
    assert summary["output_tokens"] == 3000
    assert summary["state_transitions"] == 2 * 3 + 3
    assert summary["transitions_per_chunk"] == 2.0
    assert summary["output_path"] == str(out)
    text = out.read_text(encoding="utf-8")
    assert text == uncapped_answer([{"role": "user", "content": prompt}], model=summary["model"])
    assert "chunk   3" in captured.err  # progress, one line per chunk


def test_run_request_file_context_exhausted_exits_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    request = tmp_path / "req.json"
    request.write_text(json.dumps({"messages": [{"role": "user", "content": "Write a 90,000-word saga."}]}))
    code = main(
        [
            "run",
            "--request",
            str(request),
            "--max-tokens-per-request",
            "4000",
            "--context-length",
            "9000",
            "--out",
            str(tmp_path / "saga.md"),
            "--json",
        ]
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    assert summary["status"] == "context_exhausted"
    assert summary["output_tokens"] >= 0.99 * (9000 - summary["prompt_tokens"])


def test_run_bad_request_exits_2_naming_the_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = tmp_path / "bad.json"
    request.write_text(json.dumps({"messages": [], "max_chunks": 0, "colour": "blue"}))
    code = main(["run", "--request", str(request), "--json"])
    captured = capsys.readouterr()
    assert code == 2
    assert "messages" in captured.err and "max_chunks" in captured.err and "colour" in captured.err
    payload = json.loads(captured.out.strip().splitlines()[-1])
    assert payload["status"] == "invalid"
    assert {p["field"] for p in payload["problems"]} >= {"messages", "max_chunks", "colour"}


def test_drop_command_runs_the_drop_folder_locally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    prompt_file = tmp_path / "kelp.txt"
    prompt_file.write_text("Write a 1,200-word note on kelp forests.")
    out = tmp_path / "results"
    assert main(["drop", str(prompt_file), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["kelp.json", "kelp.md"]
    result = json.loads((out / "kelp.json").read_text())
    assert result["status"] == "succeeded"
    assert result["output_tokens"] == 1200
    model = result["model"]
    assert (out / "kelp.md").read_text() == uncapped_answer(
        [{"role": "user", "content": "Write a 1,200-word note on kelp forests."}], model=model
    )
    bad = tmp_path / "bad.json"
    bad.write_text('{"prompt": ""}')
    assert main(["drop", str(bad), "--out", str(out)]) == 1
    problems = json.loads((out / "bad.error.json").read_text())["problems"]
    assert problems == [{"field": "prompt", "message": "must not be empty"}]
