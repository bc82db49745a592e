"""A real looping model (issue 15): SmolLM2 at temperature 0 with ``--ignore-eos`` falls into a loop.

Seen on main: longform stopped it after 5 chunks as ``failed`` (``no_progress``, "the continuation
added no text"), which was untrue: the model added text, it repeated itself. Now:

- with the repetition guard (the default) the job ends ``incomplete`` / ``repetition``, exit 3,
  with a message saying what was seen, and its output is a prefix of the uncapped greedy reply;
- with ``stop_on_repetition: false`` (the naive fill-the-context semantics) it ends
  ``context_exhausted`` with at least 99% of the room after the prompt used.

The uncapped reference is one greedy request run until the context is full; it is given a generous
timeout (the machine is loaded) and nothing here asserts on wall time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import LlamaServer
from .jobs import longform

pytestmark = pytest.mark.conformance

N_CTX = 768
CHUNK_TOKENS = 48
# a prompt SmolLM2-135M-Instruct answers, greedily and without its end-of-turn, by going round in
# circles (its story comes back to the same sentences over and over)
LOOP_PROMPT = "Tell a short story about a village where the stories would spread."


def uncapped_greedy(server: LlamaServer) -> dict[str, Any]:
    """One greedy request, no max_tokens: the server generates until its context is full."""
    response = server.chat(
        {"model": "smollm2", "temperature": 0, "messages": [{"role": "user", "content": LOOP_PROMPT}]},
        timeout=3 * 3600,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def run_job(server: LlamaServer, tmp_path: Path, name: str, **fields: Any) -> tuple[dict, str, dict]:
    request = tmp_path / f"{name}.request.json"
    request.write_text(
        json.dumps(
            {
                "model": "smollm2",
                "messages": [{"role": "user", "content": LOOP_PROMPT}],
                "temperature": 0,
                "max_tokens_per_request": CHUNK_TOKENS,
                **fields,
            }
        )
    )
    out = tmp_path / f"{name}.md"
    summary = longform(
        "run", "--base-url", server.base_url, "--request", str(request), "--out", str(out), timeout=3 * 3600
    )
    text = out.read_text(encoding="utf-8")
    result = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    return summary, text, result


def first_difference(a: str, b: str) -> int:
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


# three full generations of a real model on a loaded machine (seen: 0.8 tokens/s, 16 minutes for
# the reference alone): a bound far above that, and no assertion on time
@pytest.mark.timeout(4 * 3600)
def test_a_looping_model_ends_incomplete_repetition_and_without_the_guard_fills_the_context(
    start_llama, tmp_path: Path, figures: dict[str, Any]
) -> None:
    server: LlamaServer = start_llama("-c", str(N_CTX), "--ignore-eos")
    reference = uncapped_greedy(server)
    uncapped = reference["choices"][0]["message"]["content"]
    # the reference really loops: its last 200 characters occur again and again in it
    tail = uncapped[-200:]
    assert uncapped.count(tail) >= 2, uncapped[-1000:]

    summary, text, result = run_job(server, tmp_path, "guarded")
    at = first_difference(text, uncapped)
    figures.update(
        case="(f) looping model, -c 768, --ignore-eos, greedy, guard on",
        status=f"{summary['status']}/{result.get('incomplete_reason')}",
        chunks=summary["chunks"],
        output_tokens=summary["output_tokens"],
        fidelity=at / max(1, len(text)),
        seconds=summary["wall_seconds"],
        note=f"{result.get('stop_detail')}; {len(text)} of the uncapped {len(uncapped)} characters",
    )
    assert (summary["status"], result["incomplete_reason"]) == ("incomplete", "repetition"), summary
    assert summary["exit_code"] == 3, summary["stderr"][-3000:]
    assert result["error"] is None
    assert "repeat" in result["stop_detail"] and "added no text" not in result["stop_detail"]
    assert text and at == len(text), (  # a prefix of the uncapped greedy reply
        f"first difference at {at}: job {text[max(0, at - 40) : at + 40]!r} "
        f"vs uncapped {uncapped[max(0, at - 40) : at + 40]!r}"
    )
    assert len(text) < len(uncapped)  # stopped early: that is the point of the guard

    summary, text, result = run_job(server, tmp_path, "naive", stop_on_repetition=False)
    room = N_CTX - summary["prompt_tokens"]
    used = summary["output_tokens"] / room
    figures_naive = {
        "case": "(f) looping model, -c 768, --ignore-eos, greedy, stop_on_repetition false",
        "status": summary["status"],
        "chunks": summary["chunks"],
        "output_tokens": summary["output_tokens"],
        "context_used": used,
        "fidelity": first_difference(text, uncapped) / max(1, len(uncapped)),
        "seconds": summary["wall_seconds"],
        "note": f"prompt {summary['prompt_tokens']} tokens, room {room}, output {summary['output_tokens']}",
    }
    from .conftest import FIGURES

    FIGURES["test_a_looping_model_without_the_guard"] = figures_naive
    assert summary["status"] == "context_exhausted", summary
    assert summary["exit_code"] == 0, summary["stderr"][-3000:]
    assert used >= 0.99, figures_naive
    assert text.startswith(uncapped[: len(text) // 2]), "the naive run left the greedy reply early"
