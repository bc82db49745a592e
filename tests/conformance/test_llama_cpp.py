"""longform against a real llama.cpp ``llama-server`` (SmolLM2-135M-Instruct): the judge of the emulator.

Cases (issue 6): (a) a greedy job in 32-token chunks reproduces one uncapped greedy request;
(b) a server that never stops (``--ignore-eos``, ``-c 512``) ends ``context_exhausted`` with the
context full; (c) the same as (a) without streaming; (d) a job cancelled mid-way through
``longform serve`` keeps its output. First, the server's own behaviours that the emulator models.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from longform_core.echo import SentPrefill, strip_echo
from longform_core.errors import ContextWindowExceeded, ProviderRequestInvalid
from longform_core.provider import ProviderClient
from longform_core.provider_errors import classify_error

from longform.emulator.server import EmulatorServer, EmulatorSettings

from .conftest import REQUEST_TIMEOUT, LlamaServer
from .jobs import JobRun, cancel_mid_job, fidelity, first_difference, run_job

pytestmark = pytest.mark.conformance

PROMPT = "Write a long, detailed story about a lighthouse keeper and the sea."
PREFILL = "Once upon a time, a sailor"
CONVERSATION = [{"role": "user", "content": "Write a story."}, {"role": "assistant", "content": PREFILL}]
SERVER = "llama.cpp"


def streamed_deltas(base_url: str, body: dict[str, Any]) -> tuple[list[str], dict[str, Any] | None]:
    """The content deltas of a streamed reply and its usage."""
    deltas: list[str] = []
    usage = None
    with httpx.stream(
        "POST",
        f"{base_url}/chat/completions",
        json={**body, "stream": True, "stream_options": {"include_usage": True}},
        timeout=REQUEST_TIMEOUT,
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            obj = json.loads(line[6:])
            usage = obj.get("usage") or usage
            for choice in obj.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    deltas.append(piece)
    return deltas, usage


# ---- the server's behaviours, and the emulator's model of them ---------------------------------


def test_the_server_echoes_the_prefill_as_the_emulator_models_it(start_llama) -> None:
    server: LlamaServer = start_llama("-c", "2048")
    body = {"model": "smollm2", "temperature": 0, "max_tokens": 4, "messages": CONVERSATION}

    # streamed, a plain trailing assistant message: the echo merged into the first delta
    deltas, usage = streamed_deltas(server.base_url, body)
    assert deltas[0].startswith(PREFILL) and len(deltas[0]) > len(PREFILL)
    assert usage is not None and usage["completion_tokens"] == 4  # usage counts only new tokens
    echo = strip_echo(
        SentPrefill(PREFILL), content="".join(deltas), reasoning="", first_delta=deltas[0], echo_seen=False
    )
    assert echo.verdict == "stripped" and not echo.content.startswith(PREFILL)

    # the emulator in its llama.cpp mode answers in the same shape
    with EmulatorServer(EmulatorSettings(echo_prefill="merged")) as emu:
        emu_deltas, emu_usage = streamed_deltas(emu.base_url, {**body, "model": "longform/emulator"})
    assert emu_deltas[0].startswith(PREFILL) and len(emu_deltas[0]) > len(PREFILL)
    assert emu_usage is not None and emu_usage["completion_tokens"] == 4

    # non-streamed: content starts with the prefill
    plain = server.chat(body).json()
    assert plain["choices"][0]["message"]["content"].startswith(PREFILL)
    assert plain["usage"]["completion_tokens"] == 4

    # with continue_final_message (longform's "vllm" style) the stream does not echo
    vllm_style = {**body, "continue_final_message": True, "add_generation_prompt": False}
    deltas, _ = streamed_deltas(server.base_url, vllm_style)
    assert not "".join(deltas).startswith(PREFILL)
    assert PREFILL + "".join(deltas) == plain["choices"][0]["message"]["content"]


def test_the_servers_errors_are_classified(start_llama) -> None:
    server: LlamaServer = start_llama("-c", "512")
    too_long = {"model": "smollm2", "max_tokens": 8, "messages": [{"role": "user", "content": "word " * 600}]}
    for stream in (False, True):
        response = server.chat({**too_long, "stream": stream})
        assert response.status_code == 400
        error = classify_error(response.status_code, response.content)
        assert isinstance(error, ContextWindowExceeded)
        assert error.limit.context_length == 512
        assert error.limit.prompt_tokens is not None and error.limit.prompt_tokens > 512
        assert error.limit.room is not None and error.limit.room < 0
    real = server.chat(too_long).json()["error"]
    prompt = real["n_prompt_tokens"]
    with EmulatorServer(EmulatorSettings(overflow="llamacpp", context_length=512)) as emu:
        # the emulator's body has the same fields and type (its tokens are words, not BPE)
        modeled = httpx.post(
            f"{emu.base_url}/chat/completions", json={**too_long, "model": "longform/emulator"}
        ).json()["error"]
    assert set(modeled) == set(real) and modeled["type"] == real["type"] == "exceed_context_size_error"
    assert real["message"] == (
        f"request ({prompt} tokens) exceeds the available context size (512 tokens), try increasing it"
    )

    # 400s that are not about the context stay invalid requests, never retried
    for bad in (
        {**too_long, "messages": [{"role": "user", "content": "hi"}], "max_tokens": -5},
        {
            "model": "smollm2",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "a"},
                {"role": "assistant", "content": "b"},
            ],
        },
    ):
        response = server.chat(bad)
        assert response.status_code == 400
        assert isinstance(classify_error(response.status_code, response.content), ProviderRequestInvalid)


def test_the_provider_client_reads_the_server(start_llama) -> None:
    server: LlamaServer = start_llama("-c", "2048")
    with httpx.Client() as http:
        client = ProviderClient(http, base_url=server.base_url)
        body = {"model": "smollm2", "temperature": 0, "max_tokens": 6, "messages": CONVERSATION}
        streamed = client.chat(body, deadline=time.monotonic() + 60)
        plain = client.chat(body, deadline=time.monotonic() + 60, stream=False)
    assert streamed.finish_reason == plain.finish_reason == "length"
    assert streamed.usage is not None and streamed.usage.completion_tokens == 6  # separate usage chunk
    assert streamed.content == plain.content and streamed.content.startswith(PREFILL)
    assert streamed.first_delta is not None and streamed.first_delta.startswith(PREFILL)


# ---- (a) and (c): a greedy job equals one uncapped greedy request -------------------------------


def greedy_job(
    server: LlamaServer, out: Path, *, per_request: int = 32, budget: int | None = None, **more: Any
) -> JobRun:
    """A greedy ``longform run`` of PROMPT on ``server`` (``run_job``)."""
    return run_job(server.base_url, "smollm2", PROMPT, out, per_request=per_request, budget=budget, **more)


def where_they_differ(text: str, reference: str, chunk_chars: list[int]) -> str:
    """Where the job's text leaves the uncapped call's, and how far from the nearest seam."""
    at = first_difference(text, reference)
    if at == len(reference) == len(text):
        return "identical"
    seams = [sum(chunk_chars[: i + 1]) for i in range(len(chunk_chars) - 1)]
    nearest = min(seams, key=lambda s: abs(s - at)) if seams else None
    return (
        f"first difference at character {at} of {len(reference)}"
        + (f", {at - nearest:+d} from the seam at {nearest}" if nearest is not None else "")
        + f": job {text[max(0, at - 20) : at + 20]!r} vs uncapped {reference[max(0, at - 20) : at + 20]!r}"
    )


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "non-streaming"])
def test_a_greedy_job_reproduces_one_uncapped_request(
    start_llama, tmp_path: Path, figures: dict[str, Any], stream: bool
) -> None:
    budget = 384
    server: LlamaServer = start_llama("-c", "4096")
    reference = server.uncapped("smollm2", PROMPT, budget)
    plain = () if stream else ("--no-provider-stream",)
    job = greedy_job(server, tmp_path / "story.md", budget=budget, extra=plain)
    summary, text = job.summary, job.text
    # exit 3: stopped by the job's own budget (--max-output-tokens), the text cut where it was asked
    assert summary["exit_code"] == (3 if summary["stop_reason"] == "max_output_tokens" else 0), summary[
        "stderr"
    ][-3000:]
    score = fidelity(text, reference)
    where = where_they_differ(text, reference, job.result["chunk_chars"])
    case = "(a) greedy, 32-token chunks, streamed" if stream else "(c) greedy, 32-token chunks, not streamed"
    job.figures(figures, case=case, server=SERVER, fidelity=score, note=where)
    # cut by its own budget, the text unfinished: incomplete (max_output_tokens), never succeeded
    if summary["stop_reason"] == "max_output_tokens":
        assert (summary["status"], summary["incomplete_reason"]) == ("incomplete", "max_output_tokens")
    else:
        assert summary["status"] == "succeeded"
    assert summary["chunks"] >= budget // 32 - 1  # really continued, chunk after chunk
    # no doubled seam: the opening sentence appears once
    assert text.count(reference[:60]) == 1
    assert score >= 0.98, where


# ---- (f): the raw-completion rung: the template from /props, no chat prefill at all ---------------


def test_the_raw_completion_rung_reproduces_one_uncapped_request(
    start_llama, tmp_path: Path, figures: dict[str, Any]
) -> None:
    budget = 256
    # --no-prefill-assistant: no chat prefill would be continued; /v1/completions still is
    server: LlamaServer = start_llama("-c", "4096", "--no-prefill-assistant")
    assert "im_start" in httpx.get(f"{server.url}/props", timeout=REQUEST_TIMEOUT).json()["chat_template"]
    reference = server.uncapped("smollm2", PROMPT, budget)
    job = greedy_job(server, tmp_path / "story.md", budget=budget, fields={"prefill_style": "completion"})
    styles_used = job.result.get("chunk_prefill_styles") or []
    score = fidelity(job.text, reference)
    note = f"chunk styles {sorted(set(styles_used))}"
    case = "(f) raw-completion rung, --no-prefill-assistant, 32-token chunks"
    job.figures(figures, case=case, server=SERVER, fidelity=score, learning_requests=0, note=note)
    assert job.summary["status"] in ("succeeded", "incomplete"), job.summary["stderr"][-3000:]
    assert set(job.result["chunk_prefill_styles"]) <= {"none", "completion"}
    assert job.summary["chunks"] >= budget // 32 - 1
    assert score >= 0.98, (job.text[:300], reference[:300])


# ---- (e): a server that ignores the prefill (--no-prefill-assistant) ---------------------------


def test_a_server_that_ignores_the_prefill_is_noticed_and_the_job_falls_back(
    start_llama, tmp_path: Path, figures: dict[str, Any]
) -> None:
    server: LlamaServer = start_llama("-c", "4096", "--no-prefill-assistant")
    job = greedy_job(server, tmp_path / "story.md", budget=256)
    summary, text, result = job.summary, job.text, job.result
    # 3: incomplete, cut by --max-output-tokens as asked (or a fresh-turn fallback that ends no_progress)
    assert summary["exit_code"] in (0, 3), summary["stderr"][-3000:]
    opening = text[:60]
    styles = job.styles
    job.figures(
        figures,
        case="(e) --no-prefill-assistant, greedy, 32-token chunks",
        server=SERVER,
        learning_requests=styles[0]["requests"] if styles else None,
        note=f"style {result.get('prefill_style')} ({result.get('prefill_style_source')}), "
        f"chunk styles {result.get('chunk_prefill_styles')}",
    )
    # the ignored prefill was noticed: the job did not go on pasting restarts after the answer
    assert result["prefill_style"] != "assistant", result
    assert len(opening) == 60 and text.count(opening) == 1, text[:400]
    assert summary["chunks"] >= 2


# ---- (b): a server that never stops fills its context and ends context_exhausted --------------


def test_a_job_on_a_server_that_never_stops_ends_context_exhausted(
    start_llama, tmp_path: Path, figures: dict[str, Any]
) -> None:
    n_ctx = 512
    server: LlamaServer = start_llama("-c", str(n_ctx), "--ignore-eos")
    job = greedy_job(server, tmp_path / "endless.md", per_request=64)
    summary = job.summary
    assert summary["exit_code"] == 0, summary["stderr"][-3000:]
    assert summary["status"] == "context_exhausted", summary
    room = n_ctx - summary["prompt_tokens"]  # the server's real context, not what longform learned
    used = summary["output_tokens"] / room
    job.figures(
        figures,
        case="(b) --ignore-eos, -c 512, 64-token chunks",
        server=SERVER,
        context_used=used,
        note=f"prompt {summary['prompt_tokens']} tokens, room {room}, output {summary['output_tokens']}",
    )
    assert job.text  # the output is kept
    assert used >= 0.99


# ---- (d): cancel mid-way through the local API --------------------------------------------------


def test_a_job_cancelled_mid_way_through_the_api_keeps_its_output(
    start_llama, figures: dict[str, Any], tmp_path: Path
) -> None:
    server: LlamaServer = start_llama("-c", "4096", "--ignore-eos")
    cancelled = cancel_mid_job(server.base_url, tmp_path / "state", prompt=PROMPT, model="smollm2")
    status, text = cancelled.status, cancelled.text
    assert status["status"] == "cancelled", status
    cancelled.figures(
        figures,
        case="(d) cancelled through longform serve",
        note=f"{len(text)} characters kept after {status['progress']['chunks']} chunks",
    )
    assert status["progress"]["chunks"] >= 3
    assert status["progress"]["output_tokens"] < 3000
    assert len(text) > 0 and text.count(text[:40]) == 1
