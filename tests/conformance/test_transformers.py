"""longform against Hugging Face ``transformers serve`` (5.23.0, CPU torch 2.13.0): a server that never
continues a chat prefill (it always opens a new assistant turn, answers ``continue_final_message``
with 422, ignores ``prefix``) but serves ``/v1/completions`` with a raw prompt.

The ladder must find that no chat style works, never cache one, and continue on the raw-completion
rung with the SmolLM2 template (known by the model's name): the job's text then equals one uncapped
greedy chat call, with no sentence left unfinished at a seam and no new turn glued into the text.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from .conftest import THREADS, LlamaServer, Processes, free_port
from .jobs import fidelity, repeated_passage, run_job

pytestmark = pytest.mark.conformance

PROMPT = "Write a long, detailed story about a lighthouse keeper and the sea."


@pytest.fixture
def transformers_serve(processes: Processes) -> LlamaServer:
    python = os.environ["LONGFORM_TRANSFORMERS_PYTHON"]
    model_dir = os.environ["LONGFORM_TRANSFORMERS_MODEL"]
    port = free_port()
    argv = [str(Path(python).parent / "transformers"), "serve", model_dir]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32"]
    url = f"http://127.0.0.1:{port}"
    env = {"OMP_NUM_THREADS": THREADS, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    _, log = processes.start("transformers-serve", argv, f"{url}/health", env=env)
    return LlamaServer(base_url=f"{url}/v1", url=url, args=[], log=log)


def test_the_server_ignores_prefills_and_serves_raw_completions(transformers_serve: LlamaServer) -> None:
    server, model = transformers_serve, os.environ["LONGFORM_TRANSFORMERS_MODEL"]
    prefill = [
        {"role": "user", "content": "Write a story."},
        {"role": "assistant", "content": "Once upon a ti"},
    ]
    plain = server.chat({"model": model, "messages": prefill, "max_tokens": 6, "temperature": 0})
    assert plain.status_code == 200
    # a new turn: the word cut is not completed
    assert not plain.json()["choices"][0]["message"]["content"][:1].islower()
    refused = server.chat(
        {"model": model, "messages": prefill, "max_tokens": 4, "continue_final_message": True}
    )
    assert refused.status_code == 422 and "Unexpected fields" in refused.text
    raw = server.complete({"model": model, "prompt": "<|im_start|>user\nHi<|im_end|>\n", "max_tokens": 4})
    assert raw.status_code == 200 and "text" in raw.json()["choices"][0]


def test_a_greedy_job_is_learned_onto_the_completion_rung_and_reproduces_one_uncapped_call(
    transformers_serve: LlamaServer, tmp_path: Path, figures: dict[str, Any]
) -> None:
    server, model = transformers_serve, os.environ["LONGFORM_TRANSFORMERS_MODEL"]
    budget = 192
    reference = server.uncapped(model, PROMPT, budget)
    job = run_job(server.base_url, model, PROMPT, tmp_path / "story.md", per_request=32, budget=budget)
    summary, text, result, styles = job.summary, job.text, job.result, job.styles
    score = fidelity(text, reference)
    job.figures(
        figures,
        case="transformers serve: greedy, 32-token chunks",
        server="transformers serve 5.23.0",
        fidelity=score,
        learning_requests=styles[0]["requests"] if styles else None,
        note=f"learned {[s['style'] for s in styles]} after {styles[0]['steps'] if styles else None}",
    )
    assert summary["status"] in ("succeeded", "incomplete"), summary["stderr"][-3000:]
    assert result["prefill_style"] == "completion", result
    assert [s["style"] for s in styles] == ["completion"]  # the one style ever cached
    assert styles[0]["steps"] == ["assistant:ignored", "vllm:refused", "prefix:ignored"]
    assert repeated_passage(text) is None
    assert score >= 0.98, (text[:300], reference[:300])
