"""Whole jobs on the emulator's models of real servers (llama.cpp's echo and context, silent streams).

The conformance suite (tests/conformance, `make conformance`) runs the same behaviours against a
real llama.cpp server; these are the fast versions that run in every `make test`.
"""

from __future__ import annotations

import pytest

from .conftest import CloudFactory, answer_requests, expected, run_job

pytestmark = pytest.mark.integration


def prompt(tokens: int) -> str:
    return f"Write about the keepers of the Eddystone light. [emulator answer_tokens={tokens}]"


@pytest.mark.parametrize("echo", ["merged", "split"])
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "not-streamed"])
def test_an_echoing_server_gives_the_uncapped_answer_byte_for_byte(
    make_cloud: CloudFactory, emulator, echo: str, stream: bool
) -> None:
    emulator.configure(echo_prefill=echo)
    request = {"prompt": prompt(3_300), "max_tokens_per_request": 700, "stream": stream}
    with make_cloud() as cloud:
        result, _, output = run_job(cloud, request)
        assert result.status == "succeeded"
        assert output == expected(request, emulator).answer
        assert result.output_tokens == 3_300  # usage stays authoritative: only new tokens counted
        chunks = [cloud.store.get_chunk(result.job_id, i) for i in range(result.chunks)]
        assert [c.echo for c in chunks] == ["none"] + ["stripped"] * (result.chunks - 1)
        assert all(c.streamed is stream for c in chunks)
        echoed = [r["echoed_chars"] for r in answer_requests(emulator)]
        assert [c.echo_stripped_chars for c in chunks] == echoed


def test_an_echoing_server_continues_a_users_short_start(make_cloud: CloudFactory, emulator) -> None:
    emulator.configure(echo_prefill="merged")
    start = "The keepers"
    request = {
        "messages": [{"role": "user", "content": prompt(1_500)}, {"role": "assistant", "content": start}],
        "max_tokens_per_request": 600,
    }
    with make_cloud() as cloud:
        result, _, output = run_job(cloud, request)
        assert result.status == "succeeded"
        assert output.startswith(start) and not output.startswith(start + start)
        chunks = [cloud.store.get_chunk(result.job_id, i) for i in range(result.chunks)]
        assert chunks[0].echo == "stripped"  # the merged first delta is the evidence


def test_an_echoing_reasoning_server_keeps_reasoning_and_answer_apart(
    make_cloud: CloudFactory, emulator
) -> None:
    emulator.configure(echo_prefill="merged")
    model = "longform/emulated-reasoner"
    request = {
        "prompt": prompt(1_200) + " [emulator reasoning_tokens=500]",
        "model": model,
        "max_tokens_per_request": 300,
    }
    with make_cloud() as cloud:
        result, _, output = run_job(cloud, request)
        want = expected(request, emulator, model=model)
        assert want.style == "field"
        assert result.status == "succeeded"
        assert output == want.answer
        assert cloud.store.get_text(result.reasoning_key) == want.reasoning.strip("\n")


def test_llama_cpp_context_ends_context_exhausted_with_the_context_full(
    make_cloud: CloudFactory, emulator
) -> None:
    emulator.configure(overflow="llamacpp", context_length=4_000, echo_prefill="merged")
    request = {"prompt": prompt(50_000), "max_tokens_per_request": 700}
    with make_cloud() as cloud:
        result, desc, output = run_job(cloud, request)
        assert desc["status"] == "SUCCEEDED"
        assert result.status == "context_exhausted"
        room = 4_000 - result.prompt_tokens
        assert result.output_tokens >= 0.99 * room
        assert expected(request, emulator).answer.startswith(output) and output


def test_a_stream_that_ends_silently_over_the_context_learns_it_and_fills_it(
    make_cloud: CloudFactory, emulator
) -> None:
    emulator.configure(overflow="silent_stream", context_length=5_000, silent_stream_tokens=0)
    request = {"prompt": prompt(50_000), "max_tokens_per_request": 1_500}
    with make_cloud() as cloud:
        result, desc, output = run_job(cloud, request)
        assert desc["status"] == "SUCCEEDED"
        assert result.status == "context_exhausted", result.error
        assert result.context_length == 5_000  # learned from the non-streamed answer's 400
        assert result.output_tokens >= 0.99 * (5_000 - result.prompt_tokens)
        assert expected(request, emulator).answer.startswith(output)
        silent = [r for r in emulator.requests if r["silent_stream"]]
        assert silent, "the emulator never answered with a silent stream"


def test_a_stream_that_ends_silently_with_a_little_text_does_not_double_it(
    make_cloud: CloudFactory, emulator
) -> None:
    emulator.configure(overflow="silent_stream", context_length=5_000, silent_stream_tokens=7)
    request = {"prompt": prompt(50_000), "max_tokens_per_request": 1_500}
    with make_cloud() as cloud:
        result, _, output = run_job(cloud, request)
        assert result.status == "context_exhausted", result.error
        assert result.output_tokens >= 0.99 * (5_000 - result.prompt_tokens)
        assert expected(request, emulator).answer.startswith(output)
