"""``longform batch FILE.jsonl``: the output file, the --json summary, bad lines, and resume."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from longform.cli import main
from longform.emulator.model import uncapped_answer
from longform.local.batch_runner import PARTIAL_SUFFIX

pytestmark = pytest.mark.integration

MODEL = "longform/emulated-writer"


def prompts(n: int) -> list[str]:
    return [f"A 300-word note on lighthouse number {i}." for i in range(n)]


def write_batch(path: Path, texts: list[str]) -> None:
    lines = [
        {
            "custom_id": f"note-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"messages": [{"role": "user", "content": text}]},
        }
        for i, text in enumerate(texts)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


def contents(path: Path) -> list[str]:
    return [
        json.loads(line)["response"]["body"]["choices"][0]["message"]["content"]
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def test_batch_json_contract_and_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    source = tmp_path / "notes.jsonl"
    texts = prompts(3)
    write_batch(source, texts)
    out = tmp_path / "notes-out.jsonl"
    args = ["batch", str(source), "--out", str(out), "--max-concurrency", "2", "--max-tokens-per-request"]
    code = main([*args, "150", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["status"] == "completed"
    assert summary["counts"] == {
        "succeeded": 3,
        "context_exhausted": 0,
        "incomplete": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert summary["max_concurrency"] == 2
    assert 1 <= summary["max_concurrency_seen"] <= 2
    assert summary["chunks"] == 6  # 300 tokens at 150 a request
    assert summary["output_path"] == str(out)
    want = [uncapped_answer([{"role": "user", "content": t}], model=MODEL) for t in texts]
    assert contents(out) == want
    assert json.loads(Path(summary["summary_path"]).read_text())["lines"] == 3
    assert not Path(str(out) + ".partial").exists()  # a finished run leaves no checkpoint
    assert "3/3 lines" in captured.err  # the one progress bar


def test_resume_runs_only_the_lines_not_done(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    source = tmp_path / "notes.jsonl"
    texts = prompts(3)
    write_batch(source, texts)
    out = tmp_path / "notes.jsonl.out"
    args = ["batch", str(source), "--out", str(out), "--max-concurrency", "2", "--json"]
    assert main(args) == 0
    first = out.read_text(encoding="utf-8").splitlines()
    capsys.readouterr()
    # as a run stopped after two lines leaves it: the checkpoint with those two, no output yet
    checkpoint = Path(str(out) + PARTIAL_SUFFIX)
    data = source.read_bytes()
    header = {"longform_partial": 2, "input_sha256": hashlib.sha256(data).hexdigest(), "defaults": {}}
    entries = [{"key": str(n), "output": json.loads(done)} for n, done in enumerate(first[:2], start=1)]
    checkpoint.write_text("\n".join(json.dumps(x) for x in [header, *entries]) + "\n", encoding="utf-8")
    out.unlink()
    assert main(args) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["resumed_lines"] == 2
    assert "2 line(s) already done, 1 to run" in captured.err
    assert summary["counts"]["succeeded"] == 3
    again = out.read_text(encoding="utf-8").splitlines()
    assert again[:2] == first[:2]  # kept exactly as they were
    assert contents(out) == [uncapped_answer([{"role": "user", "content": t}], model=MODEL) for t in texts]
    assert json.loads(again[2])["longform"]["line"] == 3  # its own line number, not the rerun's
    assert not checkpoint.exists()


def test_identical_lines_each_get_their_own_output_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    """Seen: three identical prompts and one other gave rows line-3, line-3, line-3, line-4 (the
    checkpoint was keyed by the line's content), exit 0 "completed"."""
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    same, other = "A 120-word note on a lighthouse.", "A 120-word note on a harbour."
    source = tmp_path / "same.jsonl"
    source.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in [same, same, same, other]))
    out = tmp_path / "same-out.jsonl"
    assert main(["batch", str(source), "--out", str(out), "--max-concurrency", "2", "--json"]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["custom_id"] for r in rows] == ["line-1", "line-2", "line-3", "line-4"]
    assert [r["longform"]["line"] for r in rows] == [1, 2, 3, 4]
    assert len({r["longform"]["job_id"] for r in rows}) == 4
    want = [uncapped_answer([{"role": "user", "content": p}], model=MODEL) for p in [same, same, same, other]]
    assert contents(out) == want
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["counts"]["succeeded"] == 4


def test_a_bad_batch_exits_2_naming_every_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text('{"prompt": "fine"}\n{"prompt": ""}\nnot json\n', encoding="utf-8")
    assert main(["batch", str(source), "--json"]) == 2
    captured = capsys.readouterr()
    assert "line 2: prompt" in captured.err
    assert "line 3: (line)" in captured.err
    body = json.loads(captured.out.strip().splitlines()[-1])
    assert body["status"] == "invalid"
    assert [p["line"] for p in body["lines"]] == [2, 3]


def test_a_rerun_resumes_the_batch_it_had_started(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Stopped by SIGTERM with its jobs in a state directory, the same command again resumes the very
    batch it had started (its id, its cap, its output on disk) and ends it ``completed``; it does not
    start another batch of the lines left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from longform.local.state import StateDir

    source, out, state = tmp_path / "notes.jsonl", tmp_path / "notes-out.jsonl", tmp_path / "state"
    texts = [f"A note on lighthouse {i} [emulator answer_tokens=400]" for i in range(5)]
    write_batch(source, texts)
    command = ["batch", str(source), "--out", str(out), "--max-concurrency", "2", "--max-tokens-per-request",
               "150", "--state-dir", str(state), "--quiet"]  # fmt: skip
    first = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "longform.cli", *command, "--emulator-token-delay", "0.01"],
        env={**os.environ, "DEEPINFRA_API_KEY": ""}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    partial = out.with_name(out.name + PARTIAL_SUFFIX)
    deadline = time.monotonic() + 300  # a hang guard, not a bound on the machine's speed
    try:
        while not (partial.exists() and any('"key"' in t for t in partial.read_text().splitlines())):
            assert first.poll() is None, first.communicate()[1].decode()
            assert time.monotonic() < deadline, "no line ended"
            time.sleep(0.1)
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 130, err.decode()
    batch_id = json.loads(partial.read_text().splitlines()[1])["batch_id"]
    found = StateDir(state).read_object(f"batch-runs/{batch_id}/batch.json")
    assert found is not None and json.loads(found)["status"] in ("queued", "running")  # left to resume

    code = main([*command, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"batch {batch_id} resumed: at most 2 at once" in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["batch_id"] == batch_id and summary["status"] == "completed"
    assert summary["counts"]["succeeded"] == 5
    assert summary["max_concurrency_seen"] <= 2  # the batch's cap held on the rerun
    assert contents(out) == [uncapped_answer([{"role": "user", "content": t}]) for t in texts]
    store = StateDir(state)
    manifest = json.loads(store.read_object(f"batch-runs/{batch_id}/batch.json") or b"{}")
    assert manifest["status"] == "completed"
    assert store.read_object(f"batch-runs/{batch_id}/output.jsonl") is not None  # the batch's own output
    batches = [p.parent.name for p in (state / "bucket" / "batch-runs").glob("*/batch.json")]
    assert batches == [batch_id]  # no other batch
    assert not partial.exists()
