"""longform against llama-cpp-python's server (0.3.36, on the libllama.so that
``conformance/build_llama_server.sh`` built from the llama.cpp this very sdist vendors).

The server renders a trailing assistant message as a *finished* turn and opens a new one: its model
then writes a new answer glued to the text (``...safely acrossJameson's life was...``) that does not
restart the answer's opening, so the reply's text alone does not give it away. It reports the prompt
tokens of that rendering: an end-of-turn and a new assistant header more than a continued prefill
would cost. ``continue_final_message`` and a message's ``prefix`` are ignored; ``/v1/completions``
takes a raw prompt.

The ladder must find that no chat style continues here (the probe: a prefill cut mid-word is not
completed, and the prompt is longer than an honoured prefill's), never cache one, and continue on the
raw-completion rung (the SmolLM2 template, known by the model's name): the job's text then equals one
uncapped greedy call, with no new turn glued into it. A wrong style already in the cache (as an older
longform cached it) is found wrong, evicted, and the job falls back.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from longform_core.prefill import LearnedStyle, style_digest

from .conftest import (
    THREADS,
    LlamaServer,
    Processes,
    fidelity,
    free_port,
    repeated_passage,
    run_job,
)

pytestmark = pytest.mark.conformance

PROMPT = "Write a long, detailed story about a lighthouse keeper and the sea."
MODEL = "smollm2-135m-instruct"  # the server's alias: the raw-completion rung knows the family by it
SERVER = "llama-cpp-python 0.3.36"
BUDGET = 256
# a new turn glued to the text: a lower-case letter or a comma followed at once by a capital
# (``...safely acrossJameson's life...``, ``...who hadCaptain Jameson's...``, seen here)
GLUED = re.compile(r"[a-z,][A-Z]")
# A greedy job in 32-token requests leaves this server's uncapped call at the first seam (seen
# 2026-12-02: 174 of 1,222 characters alike, then coherent text of its own). The likely cause, not
# yet proven: its requests default to repeat_penalty 1.1 (server/types.py of 0.3.36), a penalty
# over recent tokens that a new request may not carry across the seam; longform sends no
# repeat_penalty (not an OpenAI field). So fidelity is recorded, not asserted; the seams are: no
# new turn glued into the text.


@pytest.fixture
def llama_cpp_python(processes: Processes) -> LlamaServer:
    python = os.environ["LONGFORM_LLAMA_CPP_PYTHON_PYTHON"]
    libs = str(Path(os.environ["LONGFORM_LLAMA_SERVER"]).parent)  # libllama.so beside llama-server
    port = free_port()
    argv = [python, "-m", "llama_cpp.server", "--model", os.environ["LONGFORM_LLAMA_MODEL"]]
    argv += ["--model_alias", MODEL, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096"]
    argv += ["--n_threads", THREADS, "--n_threads_batch", THREADS]
    url = f"http://127.0.0.1:{port}"
    _, log = processes.start("llama-cpp-python", argv, f"{url}/v1/models", env={"LLAMA_CPP_LIB_PATH": libs})
    return LlamaServer(base_url=f"{url}/v1", url=url, args=[], log=log)


def greedy(
    server: LlamaServer, messages: list[dict[str, Any]], max_tokens: int, **more: Any
) -> dict[str, Any]:
    response = server.chat(
        {"model": MODEL, "messages": messages, "max_tokens": max_tokens, "temperature": 0, **more}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def uncapped(server: LlamaServer) -> str:
    """One greedy call for the whole budget: what the job must reproduce."""
    reply = greedy(server, [{"role": "user", "content": PROMPT}], BUDGET)
    return str(reply["choices"][0]["message"]["content"])


def test_a_trailing_assistant_message_is_rendered_as_a_finished_turn(
    llama_cpp_python: LlamaServer, figures: dict[str, Any]
) -> None:
    server = llama_cpp_python
    user = [{"role": "user", "content": "Write a story."}]
    cut = "Once upon a ti"
    fresh = greedy(server, user, 6)
    raw = server.complete({"model": MODEL, "prompt": "<|im_start|>user\nHi<|im_end|>\n", "max_tokens": 4})
    assert raw.status_code == 200 and "text" in raw.json()["choices"][0]  # a raw prompt is served
    tokens = len(
        httpx.post(f"{server.url}/extras/tokenize", json={"input": cut}, timeout=60).json()["tokens"]
    )
    excess = []
    for extra in ({}, {"continue_final_message": True, "add_generation_prompt": False}):
        for prefix in (False, True):
            message = {"role": "assistant", "content": cut, **({"prefix": True} if prefix else {})}
            reply = greedy(server, [*user, message], 6, **extra)
            content = reply["choices"][0]["message"]["content"]
            assert not content[:1].islower(), content  # the word cut is never completed: a new turn
            excess.append(reply["usage"]["prompt_tokens"] - (fresh["usage"]["prompt_tokens"] + tokens))
    figures.update(
        case="llama-cpp-python: a prefill cut mid-word, every chat style",
        server=SERVER,
        note=f"prompt tokens past an honoured prefill's: {excess}",
    )
    # an end-of-turn and a new assistant header, whatever the request says
    assert min(excess) >= 3 and len(set(excess)) == 1, excess


def test_the_ladder_learns_the_completion_rung_and_the_job_equals_one_uncapped_call(
    llama_cpp_python: LlamaServer, tmp_path: Path, figures: dict[str, Any]
) -> None:
    server = llama_cpp_python
    reference = uncapped(server)
    job = run_job(server.base_url, MODEL, PROMPT, tmp_path / "story.md", per_request=32, budget=BUDGET)
    styles = job.styles
    score = fidelity(job.text, reference)
    job.figures(
        figures,
        case="llama-cpp-python: greedy, 32-token chunks, style learned",
        server=SERVER,
        fidelity=score,
        learning_requests=styles[0]["requests"] if styles else None,
        note=f"learned {[s['style'] for s in styles]} after {styles[0]['steps'] if styles else None}",
    )
    assert job.summary["status"] in ("succeeded", "incomplete"), job.summary["stderr"][-3000:]
    assert job.result["prefill_style"] == "completion", job.result
    assert [s["style"] for s in styles] == ["completion"]  # no chat style was ever cached
    assert all(step.endswith((":ignored", ":refused")) for step in styles[0]["steps"]), styles
    assert repeated_passage(job.text) is None, job.text
    assert GLUED.search(job.text) is None, job.text
    assert score > 0, (job.text[:300], reference[:300])  # the first chunk is the uncapped call's


def test_a_wrong_style_in_the_cache_is_evicted_and_the_job_falls_back(
    llama_cpp_python: LlamaServer, tmp_path: Path, figures: dict[str, Any]
) -> None:
    server = llama_cpp_python
    reference = uncapped(server)
    state = tmp_path / "state"
    wrong = LearnedStyle(
        base_url=server.base_url, model=MODEL, style="assistant", learned_at=datetime.now(UTC), job_id="older"
    )
    cached = state / "bucket" / "styles" / f"{style_digest(server.base_url, MODEL)}.json"
    cached.parent.mkdir(parents=True)
    cached.write_text(wrong.model_dump_json(), encoding="utf-8")
    job = run_job(
        server.base_url, MODEL, PROMPT, tmp_path / "story.md", per_request=32, budget=BUDGET, state=str(state)
    )
    styles = job.styles
    score = fidelity(job.text, reference)
    job.figures(
        figures,
        case="llama-cpp-python: greedy, a wrong style (assistant) cached",
        server=SERVER,
        fidelity=score,
        note=f"cache after the job: {[(s['style'], s['steps']) for s in styles]}",
    )
    assert job.summary["status"] in ("succeeded", "incomplete"), job.summary["stderr"][-3000:]
    assert job.result["prefill_style"] == "completion", job.result
    assert [s["style"] for s in styles] == ["completion"]
    assert repeated_passage(job.text) is None, job.text
    assert GLUED.search(job.text) is None, job.text
    assert score > 0, (job.text[:300], reference[:300])
