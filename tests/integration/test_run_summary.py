"""The summary of ``longform run``: what the provider bills (prompt tokens over every request,
cached, output), the emulator's cost marked as an illustration, no row that says nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from longform.cli import main

from .conftest import WRITER, answer_requests

pytestmark = pytest.mark.integration

PROMPT = "Write about kelp [emulator answer_tokens=3000]"


def rows(summary: str) -> dict[str, str]:
    table = {}
    for line in summary.splitlines():
        if m := re.match(r"^(\w[\w ]*?)\s{2,}(.*)$", line):
            table[m.group(1)] = m.group(2)
    return table


def test_the_tokens_row_sums_the_prompt_of_every_request(tmp_path: Path, capsys: Any, emulator: Any) -> None:
    out = tmp_path / "kelp.md"
    provider = ["--base-url", emulator.base_url, "--model", WRITER]
    args = ["run", *provider, "--prompt", PROMPT, "--max-tokens-per-request", "1000", "--out", str(out)]
    assert main([*args, "--state-dir", str(tmp_path / "state")]) == 0
    table = rows(capsys.readouterr().out)
    asked = answer_requests(emulator)
    assert len(asked) == 3
    billed = [r for r in emulator.requests if r["status"] == 200]  # the style probe too
    assert len(billed) == 4, [r["max_tokens"] for r in billed]
    prompt = sum(r["prompt_tokens"] for r in billed)
    first = asked[0]["prompt_tokens"]
    cached = sum(r["cached_tokens"] for r in billed)
    output = sum(r["completion_tokens"] for r in billed)
    assert prompt > 4 * first and output > 3000  # each continuation's prompt holds the answer so far
    assert table["tokens"] == (
        f"prompt {prompt:,} over 4 requests (1 not kept as a chunk: the style probe, a discarded reply); "
        f"the first {first:,}, cached {cached:,}, output {output:,} (3,000 in the answer)"
    )
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["prompt_tokens_total"] == sum(r["prompt_tokens"] for r in asked)  # the chunks' own
    # a server's estimated cost is its own: no "illustrative" note; no finish row, no 0.0s
    price = emulator.settings.price_input_per_mtok, emulator.settings.price_output_per_mtok
    cost = sum(r["prompt_tokens"] * price[0] + r["completion_tokens"] * price[1] for r in billed) / 1e6
    assert abs(float(table["estimated cost"].lstrip("$")) - cost) < 1e-6, (table["estimated cost"], cost)
    assert "illustrative" not in table["estimated cost"]
    assert "finish" not in table
    assert not re.search(r"(?<![\d.])0\.0s", table["time"]), table["time"]


def test_a_budget_stop_has_no_finish_row_and_the_emulator_cost_is_an_illustration(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    args = ["run", "--emulator", "--prompt", PROMPT, "--max-tokens-per-request", "1000", "--max-chunks", "1"]
    assert main([*args, "--out", str(tmp_path / "a.md")]) == 3
    table = rows(capsys.readouterr().out)
    assert table["status"].startswith("incomplete: the max_chunks budget was reached")
    assert "finish" not in table  # "budget (stop: max_chunks)" only repeated the status
    assert re.fullmatch(r"prompt [0-9,]+ over 1 request, cached [0-9,]+, output 1,000", table["tokens"])
    assert table["estimated cost"].endswith("(the emulator's illustrative price: nothing is billed)")


def test_a_resumed_summary_bills_what_the_killed_process_asked_too(
    tmp_path: Path, capsys: Any, emulator: Any
) -> None:
    """A server that ignores the assistant prefill (the reply of that rung is discarded, the vllm rung
    kept and then probed): the first process is killed before chunk 1 is committed, after it was billed
    for chunk 0, the discarded reply, the kept reply and the probe. ``resume`` in a new process asks
    chunk 1 again and finishes; its summary bills every request both processes made."""
    import os
    import signal
    import subprocess
    import sys

    from longform.local.store_faults import SIGKILL_ENV

    emulator.configure(prefill_style="vllm")
    state, out = tmp_path / "state", tmp_path / "kelp.md"
    env = {**os.environ, "DEEPINFRA_API_KEY": "", SIGKILL_ENV: "chunks/:2"}  # before chunk 1's record
    run = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "longform.cli", "run", "--base-url", emulator.base_url, "--model", WRITER,
         "--prompt", PROMPT, "--max-tokens-per-request", "1000", "--state-dir", str(state),
         "--out", str(out), "--quiet"],
        env=env, capture_output=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == -signal.SIGKILL, run.stderr.decode()
    killed = [r for r in emulator.requests if r["status"] == 200]
    # chunk 0, then chunk 1: the assistant rung's reply discarded, the vllm rung's kept, the probe
    assert len(killed) == 4, [(r["max_tokens"], r["messages"]) for r in killed]
    [job_dir] = (state / "bucket" / "jobs").iterdir()
    assert main(["resume", job_dir.name, "--state-dir", str(state), "--out", str(out)]) == 0
    table = rows(capsys.readouterr().out)
    billed = [r for r in emulator.requests if r["status"] == 200]
    asked = answer_requests(emulator)
    assert len(billed) > len(killed) + 1, [(r["max_tokens"], r["messages"]) for r in billed]
    prompt = sum(r["prompt_tokens"] for r in billed)
    cached = sum(r["cached_tokens"] for r in billed)
    output = sum(r["completion_tokens"] for r in billed)
    assert table["tokens"] == (
        f"prompt {prompt:,} over {len(billed)} requests ({len(billed) - 3} not kept as a chunk: "
        "the style probe, a discarded reply); "
        f"the first {asked[0]['prompt_tokens']:,}, cached {cached:,}, output {output:,} (3,000 in the answer)"
    )
    price = emulator.settings.price_input_per_mtok, emulator.settings.price_output_per_mtok
    cost = sum(r["prompt_tokens"] * price[0] + r["completion_tokens"] * price[1] for r in billed) / 1e6
    assert abs(float(table["estimated cost"].lstrip("$")) - cost) < 1e-6, (table["estimated cost"], cost)
    assert main(["show", job_dir.name, "--state-dir", str(state)]) == 0  # show reads the same bill
    shown = rows(capsys.readouterr().out)
    bill = f"prompt {prompt:,} over {len(billed)} requests, cached {cached:,}, output {output:,}"
    assert shown["billed"] == bill
    assert main(["show", job_dir.name, "--state-dir", str(state), "--json"]) == 0
    as_json = json.loads(capsys.readouterr().out)["billed"]
    assert (as_json["requests"], as_json["prompt_tokens"], as_json["output_tokens"]) == (
        len(billed),
        prompt,
        output,
    )
    assert abs(float(shown["estimated cost"].lstrip("$")) - cost) < 1e-6
