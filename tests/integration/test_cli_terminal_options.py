"""The terminal, as people use it: options that name their fix in one line, --system, no empty --out."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from longform.cli import main
from longform.emulator.model import uncapped_answer

from .test_cli import one_line_error

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _no_key(monkeypatch) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)


@pytest.mark.parametrize("command", [["run", "--prompt", "x"], ["batch", "b.jsonl"]])
def test_a_base_url_without_a_scheme_says_add_http(command: list[str], capsys) -> None:
    assert main([*command, "--base-url", "localhost:8080"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "--base-url localhost:8080: add http:// (e.g. --base-url http://localhost:8080)" in line


def test_prompt_and_prompt_file_together_is_one_line(capsys, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--prompt", "x", "--prompt-file", str(tmp_path / "p.txt")])
    assert exit_.value.code == 2
    line = one_line_error(capsys.readouterr().err)
    assert "--prompt-file: not allowed with --prompt" in line


def test_a_did_you_mean_never_names_the_option_it_rejects(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["resume", "0123456789abcdef", "--port", "8080"])  # serve's option
    err = capsys.readouterr().err
    assert "--port (not an option of this command" in err
    assert "did you mean --port" not in err


def test_resume_takes_the_provider_options_the_readme_promises(capsys, tmp_path: Path) -> None:
    code = main(["resume", "0123456789abcdef", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"])
    assert code == 2  # parsed; the job is unknown
    assert "no job 0123456789abcdef" in one_line_error(capsys.readouterr().err)


def test_system_prompt(tmp_path: Path, capsys) -> None:
    state, out = tmp_path / "state", tmp_path / "a.md"
    prompt = "Write about otters [emulator answer_tokens=700]"
    system_file = tmp_path / "system.txt"
    system_file.write_text("You write plainly.")
    args = ["run", "--emulator", "--prompt", prompt, "--system-file", str(system_file), "--out", str(out)]
    assert main([*args, "--state-dir", str(state), "--quiet", "--max-tokens-per-request", "300"]) == 0
    [request_file] = (state / "bucket" / "jobs").glob("*/request.json")
    messages = json.loads(request_file.read_text())["messages"]
    assert messages == [
        {"role": "system", "content": "You write plainly."},
        {"role": "user", "content": prompt},
    ]
    assert out.read_text() == uncapped_answer(messages)


def test_a_failed_job_leaves_no_empty_out(tmp_path: Path, capsys, emulator) -> None:
    emulator.configure(api_key="needed")  # no key is sent: the first chunk fails (401)
    out = tmp_path / "a.md"
    base = ["run", "--base-url", emulator.base_url, "--model", "longform/emulated-writer", "--prompt", "x"]
    code = main([*base, "--out", str(out), "--quiet"])
    assert code == 1
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_batch_state_dir_keeps_the_lines_jobs(tmp_path: Path, capsys) -> None:
    batch, state = tmp_path / "b.jsonl", tmp_path / "state"
    batch.write_text(
        json.dumps({"custom_id": "a", "prompt": "Write about moss [emulator answer_tokens=200]"}) + "\n"
    )
    out = tmp_path / "b.out.jsonl"
    assert (
        main(["batch", str(batch), "--emulator", "--out", str(out), "--state-dir", str(state), "--quiet"])
        == 0
    )
    capsys.readouterr()
    assert main(["list", "--state-dir", str(state), "--json"]) == 0
    [job] = json.loads(capsys.readouterr().out)
    assert job["status"] == "succeeded" and "moss" in job["prompt"]


def test_drop_of_an_invalid_request_prints_its_problems_and_exits_2(tmp_path: Path, capfd) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"prompt": 5, "max_chunks": -1}))
    assert main(["drop", str(bad), "--emulator", "--out", str(tmp_path / "out")]) == 2
    err = capfd.readouterr().err
    assert err.splitlines() == [
        "longform: the request is invalid:",
        "  - prompt: Input should be a valid string",
        "  - max_chunks: Input should be greater than or equal to 1",
    ]
    assert not (tmp_path / "out").exists()


def test_run_with_stdout_not_a_terminal_prints_the_answer_there(tmp_path: Path, capsys, monkeypatch) -> None:
    """`longform run ... > answer.md`: the answer is stdout; the summary and progress are on stderr."""
    monkeypatch.chdir(tmp_path)
    prompt = "Write about eels [emulator answer_tokens=900]"
    assert main(["run", "--emulator", "--prompt", prompt, "--max-tokens-per-request", "400"]) == 0
    captured = capsys.readouterr()
    assert captured.out == uncapped_answer([{"role": "user", "content": prompt}]) + "\n"
    assert "status" in captured.err and "done" in captured.err  # the summary
    assert not (tmp_path / "out").exists()


def test_the_summary_names_the_reasoning_file_and_says_what_is_illustrative(tmp_path: Path, capsys) -> None:
    out = tmp_path / "a.md"
    prompt = "Write about owls [emulator answer_tokens=300]"
    model = ["--model", "longform/emulator-reasoning"]
    assert main(["run", "--emulator", *model, "--prompt", prompt, "--out", str(out)]) == 0
    summary = capsys.readouterr().out
    reasoning = out.with_suffix(".reasoning.md")
    assert reasoning.read_text()
    assert re.search(rf"^reasoning\s+{re.escape(str(reasoning))}$", summary, re.MULTILINE), summary
    assert "(stop: stop)" not in summary and "finish " not in summary  # a plain stop needs no row
    assert re.search(
        r"^estimated cost\s+\$[0-9.]+ \(the emulator's illustrative price", summary, re.MULTILINE
    )
