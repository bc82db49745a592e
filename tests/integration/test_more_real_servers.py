"""Whole jobs on the emulator's models of the servers issue 19 put in the judge's seat: LiteLLM's
proxy in front of llama.cpp, ``transformers serve``, llama-cpp-python's server. The conformance
suite (``make conformance``) runs the real ones; these are the fast versions in every ``make test``.
"""

from __future__ import annotations

import httpx
import pytest

from .conftest import CloudFactory, expected, run_job

pytestmark = pytest.mark.integration


def prompt(tokens: int) -> str:
    return f"Write about the keepers of the Eddystone light. [emulator answer_tokens={tokens}]"


def test_litellm_wrapped_context_error_and_ping_keepalives_end_context_exhausted_with_the_context_full(
    make_cloud: CloudFactory, emulator
) -> None:
    emulator.configure(
        overflow="litellm",
        context_length=4_000,
        echo_prefill="merged",
        keepalive_every=3,
        keepalive_comment="ping",
    )
    request = {"prompt": prompt(50_000), "max_tokens_per_request": 700}
    with make_cloud() as cloud:
        result, desc, output = run_job(cloud, request)
        assert desc["status"] == "SUCCEEDED"
        assert result.status == "context_exhausted"
        assert result.output_tokens >= 0.99 * (4_000 - result.prompt_tokens)
        assert expected(request, emulator).answer.startswith(output) and output
    rejected = [r for r in emulator.requests if r["status"] == 400]
    assert rejected  # the wrapped wording was met, and read
    with httpx.stream(
        "POST",
        f"{emulator.base_url}/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 6, "stream": True},
    ) as response:
        assert ": ping" in response.read().decode()


def test_transformers_serve_is_continued_on_the_raw_completion_rung_byte_for_byte(
    make_cloud: CloudFactory, emulator
) -> None:
    # a prefill always ignored (a new assistant turn), continue_final_message refused with 422,
    # prefix ignored, no [DONE], no context check, /v1/completions served
    emulator.configure(
        prefill_style="none",
        unknown_fields="reject",
        done_marker=False,
        overflow="none",
        completions="chatml",
    )
    request = {"prompt": prompt(2_500), "max_tokens_per_request": 600}
    with make_cloud() as cloud:
        result, _, output = run_job(cloud, request)
        assert result.status == "succeeded", result.error
        assert output == expected(request, emulator).answer
        chunks = [cloud.store.get_chunk(result.job_id, i) for i in range(result.chunks)]
        first = next(c for c in chunks if c.prefill_style != "none")
        assert [str(s) for s in first.prefill_ladder] == [
            "assistant:ignored",
            "vllm:refused",
            "prefix:ignored",
        ]
        assert result.prefill_style == "completion"
    assert any(r["status"] == 422 for r in emulator.requests)


def test_a_server_with_no_context_check_does_not_loop_forever(make_cloud: CloudFactory, emulator) -> None:
    # a prompt past the window is answered anyway and usage keeps growing past it: the job still
    # ends by its own rules (the model's stop here), never looping on a context it cannot trust
    emulator.configure(overflow="none", context_length=1_000)
    request = {"prompt": prompt(3_000), "max_tokens_per_request": 500, "context_length": 1_000}
    with make_cloud() as cloud:
        result, desc, output = run_job(cloud, request)
        assert desc["status"] == "SUCCEEDED"
        assert result.status in ("succeeded", "context_exhausted", "incomplete")
        assert output and expected(request, emulator).answer.startswith(output)
