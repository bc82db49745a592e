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

from .conftest import THREADS, LlamaServer, Processes, free_port
from .jobs import JobRun, fidelity, repeated_passage, run_job

pytestmark = pytest.mark.conformance

PROMPT = "Write a long, detailed story about a lighthouse keeper and the sea."
MODEL = "smollm2-135m-instruct"  # the server's alias: the raw-completion rung knows the family by it
SERVER = "llama-cpp-python 0.3.36"
BUDGET = 256
# a new turn glued to the text: a lower-case letter or a comma followed at once by a capital
# (``...safely acrossJameson's life...``, ``...who hadCaptain Jameson's...``, seen here)
GLUED = re.compile(r"[a-z,][A-Z]")
# Greedy on this server is two things more than ``temperature: 0`` (both proven 2026-12-03, SmolLM2
# 135M Q4_1, docs/conformance.md):
# 1. Its requests default to ``repeat_penalty`` 1.1 (server/types.py), applied by a sampler chain
#    made afresh for each request (llama.py ``generate`` -> ``_init_sampler``) over the last 64 tokens
#    that request generated: prompt tokens are never accepted into it. A job's next request does not
#    penalise the tokens its previous one wrote, one uncapped call does: they part at the first seam
#    (174 of 1,223 characters alike) whatever longform sends. Asked for ``repeat_penalty`` 1.0 (greedy
#    as a user of this server means it), the job and the call agree to the last character. So both
#    ask it: the reference in its body, the job through ``provider_params`` (``--provider-param``).
# 2. Its answer to one greedy request depends on what it was asked before. ``generate`` reuses the
#    KV cache of the longest common prefix and evaluates the rest of the prompt in one batch (a
#    prompt already cached: its last token alone), and the batched and the one-token matrix products
#    round differently: the first call after start-up ("...in the year 1850...") and the same call
#    again ("...in the small island...") part at character 25. That, not longform, was the 2.21% of
#    the last run (a cold reference, a warm job). With ``--n_batch 1 --n_ubatch 1`` every token is
#    evaluated alone, as generated tokens are, so a greedy call is a function of its prompt: the
#    reference is well defined, and the job must reproduce it exactly.
GREEDY = {"repeat_penalty": 1.0}
GREEDY_ARGS = tuple(a for k, v in GREEDY.items() for a in ("--provider-param", f"{k}={v}"))
MIN_FIDELITY = 0.98


@pytest.fixture
def llama_cpp_python(processes: Processes) -> LlamaServer:
    python = os.environ["LONGFORM_LLAMA_CPP_PYTHON_PYTHON"]
    libs = str(Path(os.environ["LONGFORM_LLAMA_SERVER"]).parent)  # libllama.so beside llama-server
    port = free_port()
    argv = [python, "-m", "llama_cpp.server", "--model", os.environ["LONGFORM_LLAMA_MODEL"]]
    argv += ["--model_alias", MODEL, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096"]
    argv += ["--n_threads", THREADS, "--n_threads_batch", THREADS]
    argv += ["--n_batch", "1", "--n_ubatch", "1"]  # numerics that do not depend on the cache (above)
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
    reply = greedy(server, [{"role": "user", "content": PROMPT}], BUDGET, **GREEDY)
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


def greedy_job(server: LlamaServer, tmp_path: Path, state: str | None = None) -> JobRun:
    """The story in 32-token greedy requests (repeat_penalty 1.0), to compare with one uncapped call."""
    out = tmp_path / "story.md"
    return run_job(
        server.base_url, MODEL, PROMPT, out, per_request=32, budget=BUDGET, state=state, extra=GREEDY_ARGS
    )


def test_the_ladder_learns_the_completion_rung_and_the_job_equals_one_uncapped_call(
    llama_cpp_python: LlamaServer, tmp_path: Path, figures: dict[str, Any]
) -> None:
    server = llama_cpp_python
    reference = uncapped(server)
    job = greedy_job(server, tmp_path)
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
    assert score >= MIN_FIDELITY, (score, job.text, reference)


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
    job = greedy_job(server, tmp_path, state=str(state))
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
    assert score >= MIN_FIDELITY, (score, job.text, reference)
