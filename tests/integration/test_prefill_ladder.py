"""The prefill ladder (prefill.py, seam.py) on the emulator's models of servers that refuse, ignore
or half-support a prefill: whole jobs through the real ASL.

Each behaviour asserts the style learned, how many requests it took to learn it (the chunk
record's ``prefill_ladder`` + 1), that no passage of 200 characters appears twice in the output,
and that the output is the uncapped answer where the behaviour allows it.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import WRITER, CloudFactory, expected, run_job

pytestmark = pytest.mark.integration

PASSAGE = 200


def prompt(tokens: int) -> str:
    return f"Write about the keepers of the Eddystone light. [emulator answer_tokens={tokens}]"


def repeated_passage(text: str, size: int = PASSAGE) -> str | None:
    """A passage of ``size`` characters that appears twice in ``text`` (None: none does)."""
    seen: set[str] = set()
    for i in range(0, max(0, len(text) - size + 1)):
        window = text[i : i + size]
        if window in seen:
            return window
        seen.add(window)
    return None


def chunks_of(cloud: Any, result: Any) -> list[Any]:
    return [cloud.store.get_chunk(result.job_id, i) for i in range(result.chunks)]


def learned(cloud: Any, result: Any) -> tuple[str, int]:
    """(the style the job continued with, requests it took to learn it)."""
    chunks = chunks_of(cloud, result)
    first = next(c for c in chunks if c.prefill_style != "none")
    return str(result.prefill_style), len(first.prefill_ladder) + 1


def run_clean(cloud: Any, emulator: Any, request: dict[str, Any]) -> tuple[Any, str]:
    result, desc, output = run_job(cloud, request)
    assert desc["status"] == "SUCCEEDED", desc
    assert result.status == "succeeded", result.error
    assert repeated_passage(output) is None
    return result, output


REQUEST = {"prompt": prompt(2_500), "max_tokens_per_request": 600}


@pytest.mark.parametrize("refusal", ["anthropic", "llamacpp_thinking", "gateway"])
def test_a_refused_prefill_steps_down_to_the_continue_message(
    make_cloud: CloudFactory, emulator, refusal: str
) -> None:
    emulator.configure(prefill_style="reject", prefill_refusal=refusal)
    with make_cloud() as cloud:
        result, output = run_clean(cloud, emulator, REQUEST)
        assert output == expected(REQUEST, emulator).answer
        assert learned(cloud, result) == ("continue_message", 4)
        first = next(c for c in chunks_of(cloud, result) if c.prefill_style != "none")
        assert [str(s) for s in first.prefill_ladder] == [
            "assistant:refused",
            "vllm:refused",
            "prefix:refused",
        ]
        # the next job on this (base URL, model) starts from the cache: no refusal at all
        again, _ = run_clean(cloud, emulator, REQUEST)
        assert again.prefill_style_source == "cache"
        assert all(not c.prefill_ladder for c in chunks_of(cloud, again))


def test_trailing_whitespace_refused_is_trimmed_and_put_back(make_cloud: CloudFactory, emulator) -> None:
    emulator.configure(reject_trailing_whitespace_prefill=True)
    # a user's start that ends in whitespace: the first continuation sends it
    request = {
        "messages": [
            {"role": "user", "content": prompt(1_500)},
            {"role": "assistant", "content": "The keepers "},
        ],
        "max_tokens_per_request": 500,
    }
    with make_cloud() as cloud:
        result, output = run_clean(cloud, emulator, request)
        assert output.startswith("The keepers ") and "  " not in output[:40]
        chunks = chunks_of(cloud, result)
        assert [str(s) for s in chunks[0].prefill_ladder] == ["assistant:trailing_whitespace"]
        assert chunks[0].prefill_trimmed_chars == 1
        assert learned(cloud, result) == ("assistant", 2)


def test_an_ignored_prefill_is_noticed_and_the_job_falls_back(make_cloud: CloudFactory, emulator) -> None:
    emulator.configure(prefill_style="none")
    with make_cloud() as cloud:
        result, output = run_clean(cloud, emulator, REQUEST)
        answer = expected(REQUEST, emulator).answer
        assert output == answer
        assert output.count(answer[:60]) == 1  # the opening only once
        first = next(c for c in chunks_of(cloud, result) if c.prefill_style != "none")
        assert [str(s) for s in first.prefill_ladder] == [
            "assistant:ignored",
            "vllm:ignored",
            "prefix:ignored",
        ]
        assert first.discarded_completion_tokens > 0
        assert learned(cloud, result) == ("continue_message", 4)


def test_an_ignored_prefill_with_a_known_template_is_continued_as_a_raw_completion(
    make_cloud: CloudFactory, emulator
) -> None:
    # transformers serve: every chat prefill ignored, /v1/completions served; the template from
    # GET /props (llama.cpp's way; the emulator serves ChatML)
    emulator.configure(prefill_style="none", completions="chatml")
    with make_cloud() as cloud:
        result, output = run_clean(cloud, emulator, REQUEST)
        assert output == expected(REQUEST, emulator).answer  # exact seams: no restart, no preamble
        first = next(c for c in chunks_of(cloud, result) if c.prefill_style != "none")
        assert [str(s) for s in first.prefill_ladder] == [
            "assistant:ignored",
            "vllm:ignored",
            "prefix:ignored",
        ]
        assert learned(cloud, result) == ("completion", 4)
        later = [c for c in chunks_of(cloud, result) if c.prefill_style != "none"][1:]
        assert later and all(c.prefill_style == "completion" and not c.prefill_ladder for c in later)
        raw = [r for r in emulator.requests if r["path"] == "/v1/openai/completions"]
        assert len(raw) == len(later) + 1  # every continuation after learning went there
        # the next job on this (base URL, model) starts from the cache
        again, again_output = run_clean(cloud, emulator, REQUEST)
        assert again.prefill_style_source == "cache" and again_output == output


def test_a_template_given_in_the_request_is_used_where_the_server_has_no_props(
    make_cloud: CloudFactory, emulator
) -> None:
    from longform_core.chat_template import CHATML_TEMPLATE

    emulator.configure(prefill_style="none", completions="chatml")
    request = {**REQUEST, "chat_template": CHATML_TEMPLATE, "prefill_style": "completion"}
    with make_cloud() as cloud:
        result, output = run_clean(cloud, emulator, request)
        assert output == expected(REQUEST, emulator).answer
        assert all(c.prefill_style in ("none", "completion") for c in chunks_of(cloud, result))
        assert not [r for r in emulator.requests if r["path"] == "/props"]


def test_no_completions_endpoint_steps_down_to_the_continue_message(
    make_cloud: CloudFactory, emulator
) -> None:
    # a template is known (the request's) but the server has no /v1/completions: 404, one step down
    from longform_core.chat_template import CHATML_TEMPLATE

    emulator.configure(prefill_style="none")
    request = {**REQUEST, "chat_template": CHATML_TEMPLATE}
    with make_cloud() as cloud:
        result, output = run_clean(cloud, emulator, request)
        assert output == expected(REQUEST, emulator).answer
        first = next(c for c in chunks_of(cloud, result) if c.prefill_style != "none")
        assert [str(s) for s in first.prefill_ladder] == [
            "assistant:ignored",
            "vllm:ignored",
            "prefix:ignored",
            "completion:refused",
        ]
        assert learned(cloud, result) == ("continue_message", 5)


@pytest.mark.parametrize("completions", ["off", "chatml"])
def test_a_new_turn_glued_to_the_text_is_probed_never_learned_and_never_glued(
    make_cloud: CloudFactory, emulator, completions: str
) -> None:
    # llama-cpp-python's server: a trailing assistant message is a finished turn and the model
    # begins a new answer glued to the text, without restarting the opening (nothing in the reply
    # gives it away): the probe (a prefill cut mid-word) finds it before any style is cached
    emulator.configure(prefill_style="new_turn", completions=completions)
    with make_cloud() as cloud:
        result, output = run_clean(cloud, emulator, REQUEST)
        assert output == expected(REQUEST, emulator).answer  # no new turn glued into the text
        first = next(c for c in chunks_of(cloud, result) if c.prefill_style != "none")
        assert [str(s) for s in first.prefill_ladder] == [
            "assistant:ignored",
            "vllm:ignored",
            "prefix:ignored",
        ]
        style = "completion" if completions == "chatml" else "continue_message"
        assert learned(cloud, result) == (style, 4)
        cached = cloud.store.get_learned_style(emulator.base_url, WRITER)
        assert cached is not None and cached.style == style  # the wrong style was never cached


def test_a_vllm_server_is_learned_from_one_ignored_prefill(make_cloud: CloudFactory, emulator) -> None:
    emulator.configure(prefill_style="vllm")
    with make_cloud() as cloud:
        result, output = run_clean(cloud, emulator, REQUEST)
        assert output == expected(REQUEST, emulator).answer
        assert learned(cloud, result) == ("vllm", 2)
        assert all(c.prefill_style in ("none", "vllm") for c in chunks_of(cloud, result))


@pytest.mark.parametrize(
    "imperfection",
    [
        {"continue_overlap_chars": 60},
        {"continue_preamble": "Sure, continuing where I left off:\n\n"},
        {"continue_drop_seam_space": True},
        {
            "continue_overlap_chars": 60,
            "continue_preamble": "Sure, continuing where I left off:\n\n",
            "continue_drop_seam_space": True,
        },
    ],
    ids=["overlap", "preamble", "dropped-space", "all-three"],
)
def test_a_continue_message_seam_is_cleaned(
    make_cloud: CloudFactory, emulator, imperfection: dict[str, Any]
) -> None:
    emulator.configure(prefill_style="reject", **imperfection)
    with make_cloud() as cloud:
        result, output = run_clean(cloud, emulator, REQUEST)
        assert output == expected(REQUEST, emulator).answer
        chunks = [c for c in chunks_of(cloud, result) if c.prefill_style == "continue_message"]
        assert chunks
        if "continue_overlap_chars" in imperfection:
            assert all(c.seam_overlap_chars > 0 for c in chunks)
        if "continue_preamble" in imperfection:
            assert all(c.seam_preamble for c in chunks)


def test_explicit_continue_message_needs_no_learning(make_cloud: CloudFactory, emulator) -> None:
    emulator.configure(prefill_style="reject", continue_overlap_chars=40)
    request = {**REQUEST, "prefill_style": "continue_message"}
    with make_cloud() as cloud:
        result, output = run_clean(cloud, emulator, request)
        assert output == expected(request, emulator).answer
        assert result.prefill_style_source == "request"
        assert len([r for r in emulator.requests if r["status"] != 200]) == 0


@pytest.mark.parametrize("style", ["assistant", "none", "reject"])
def test_a_reasoning_model_across_the_ladder(make_cloud: CloudFactory, emulator, style: str) -> None:
    """The thinking fits the first chunk, the answer is cut: every rung gives the clean answer,
    and the continue-message fallback never pastes reasoning into it."""
    emulator.configure(prefill_style=style)
    model = "longform/emulated-reasoner"
    request = {
        "prompt": prompt(1_500) + " [emulator reasoning_tokens=200]",
        "model": model,
        "max_tokens_per_request": 300,
    }
    with make_cloud() as cloud:
        result, output = run_clean(cloud, emulator, request)
        want = expected(request, emulator, model=model)
        assert output == want.answer
        assert "<think>" not in output and want.reasoning.strip()[:80] not in output
        reasoning = cloud.store.get_text(result.reasoning_key) if result.reasoning_key else ""
        assert reasoning and want.reasoning.strip("\n").startswith(reasoning[:200])
        assert (
            result.prefill_style
            == {"assistant": "assistant", "none": "continue_message", "reject": "continue_message"}[style]
        )


def test_a_reasoning_model_cut_mid_thought_is_continued_as_reasoning(
    make_cloud: CloudFactory, emulator
) -> None:
    emulator.configure(prefill_style="assistant")
    model = "longform/emulated-reasoner"
    request = {
        "prompt": prompt(1_200) + " [emulator reasoning_tokens=700]",
        "model": model,
        "max_tokens_per_request": 300,
    }
    with make_cloud() as cloud:
        result, output = run_clean(cloud, emulator, request)
        want = expected(request, emulator, model=model)
        assert output == want.answer
        assert cloud.store.get_text(result.reasoning_key) == want.reasoning.strip("\n")


def test_a_reasoning_model_that_cannot_continue_its_thought_ends_no_progress(
    make_cloud: CloudFactory, emulator
) -> None:
    """Known limit: thinking longer than one request on a server that ignores every prefill: a
    fresh turn thinks the same again, so the job ends `incomplete` / `no_progress` (nothing lost)
    instead of looping."""
    emulator.configure(prefill_style="none")
    model = "longform/emulated-reasoner"
    request = {
        "prompt": prompt(1_200) + " [emulator reasoning_tokens=700]",
        "model": model,
        "max_tokens_per_request": 300,
    }
    with make_cloud() as cloud:
        result, _, output = run_job(cloud, request)
        assert (result.status, result.stop_reason) == ("incomplete", "no_progress")
        assert result.incomplete_reason == "no_progress" and result.error is None
        assert output == ""


def test_a_continuation_that_repeats_the_last_chunk_is_asked_again_once(
    make_cloud: CloudFactory, emulator
) -> None:
    """Seen on transformers serve: asked to continue, the model wrote the previous chunk again word
    for word; overlap removal dropped all of it and the job ended failed at 128 of 200 tokens. Now
    the continue message is asked once more, differently, and the job goes on to the whole answer."""
    emulator.configure(prefill_style="reject", continue_repeat="once", continue_overlap_chars=40)
    request = {**REQUEST, "prefill_style": "continue_message"}
    with make_cloud() as cloud:
        result, output = run_clean(cloud, emulator, request)
        assert output == expected(request, emulator).answer
        later = [c for c in chunks_of(cloud, result) if c.prefill_style == "continue_message"]
        assert later and all(
            [str(s) for s in c.prefill_ladder] == ["continue_message:repeated"] for c in later
        )
        assert all(c.discarded_completion_tokens > 0 for c in later)
        repeated = [r for r in emulator.requests if r.get("repeated")]
        assert len(repeated) == len(later)  # one repeat per seam, each asked again once


def test_a_model_that_only_ever_repeats_stops_incomplete_with_its_text(
    make_cloud: CloudFactory, emulator
) -> None:
    """Asked again and still repeating: the job stops, truthfully ``incomplete`` / ``no_progress``,
    never ``failed``, and the text it had is kept."""
    emulator.configure(prefill_style="reject", continue_repeat="always")
    request = {**REQUEST, "prefill_style": "continue_message"}
    with make_cloud() as cloud:
        result, desc, output = run_job(cloud, request)
        assert desc["status"] == "SUCCEEDED"
        assert (result.status, result.incomplete_reason) == ("incomplete", "no_progress")
        assert result.error is None
        answer = expected(request, emulator).answer
        assert output and answer.startswith(output)  # the first chunk's text, kept
        last = chunks_of(cloud, result)[-1]
        assert [str(s) for s in last.prefill_ladder] == ["continue_message:repeated"] and last.text == ""
