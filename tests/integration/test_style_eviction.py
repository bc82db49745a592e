"""A prefill style found wrong after it was cached is evicted, and the job falls back (issue 19).

The emulator's ``prefill_style="new_turn"`` with ``new_turn_header_tokens=6`` is llama-cpp-python's
server 0.3.36 as measured (tests/conformance/test_llama_cpp_python.py): a trailing assistant message
is a finished turn, the model's new answer is glued to the text, and the prompt it reports holds an
end-of-turn and a new assistant header more than a continued prefill would cost. An older longform
cached ``assistant`` for it; whole jobs through the real ASL.
"""

from __future__ import annotations

from typing import Any

import pytest
from longform_core.models import utcnow
from longform_core.prefill import LearnedStyle

from .conftest import WRITER, CloudFactory, expected, run_job

pytestmark = pytest.mark.integration

REQUEST = {
    "prompt": "Write about the keepers of the Eddystone light. [emulator answer_tokens=2500]",
    "max_tokens_per_request": 600,
}


def cache_a_wrong_style(cloud: Any, emulator: Any) -> None:
    cloud.store.put_learned_style(
        LearnedStyle(
            base_url=emulator.base_url, model=WRITER, style="assistant", learned_at=utcnow(), job_id="older"
        )
    )


def test_a_wrong_cached_style_is_found_by_the_prompt_evicted_and_the_job_falls_back(
    make_cloud: CloudFactory, emulator
) -> None:
    emulator.configure(prefill_style="new_turn", new_turn_header_tokens=6, completions="chatml")
    with make_cloud() as cloud:
        cache_a_wrong_style(cloud, emulator)
        result, desc, output = run_job(cloud, REQUEST)
        assert desc["status"] == "SUCCEEDED" and result.status == "succeeded", result.error
        assert output == expected(REQUEST, emulator).answer  # no new turn glued into the text
        chunks = [cloud.store.get_chunk(result.job_id, i) for i in range(result.chunks)]
        first = next(c for c in chunks if c.prefill_style != "none")
        assert first.prefill_ladder[0].rung.style == "assistant"  # the cached style, found wrong
        assert result.prefill_style == "completion"
        learned = cloud.store.get_learned_style(emulator.base_url, WRITER)
        assert learned is not None and learned.style == "completion" and learned.job_id == result.job_id


def test_the_wrong_style_is_evicted_even_when_the_job_then_fails(make_cloud: CloudFactory, emulator) -> None:
    # the step down's request fails for good (a 400 not about the context): the job ends failed
    # before it could learn a better style; no later job may start on the wrong one
    emulator.configure(prefill_style="new_turn", new_turn_header_tokens=6, completions="chatml")
    with make_cloud() as cloud:
        cache_a_wrong_style(cloud, emulator)
        emulator.inject({"type": "status", "status": 400, "message": "invalid request: bad field", "skip": 2})
        result, _, _ = run_job(cloud, REQUEST)
        assert result.status == "failed"
        paths = [r["path"] for r in emulator.requests]
        assert len(paths) == 3  # the first chunk, the cached style found wrong, the step down (400)
        assert cloud.store.get_learned_style(emulator.base_url, WRITER) is None


@pytest.mark.parametrize("lead", ["", "\n\n"], ids=["glued", "paragraph"])
def test_a_new_turn_in_the_middle_of_a_job_is_found_on_its_reply_and_the_style_evicted(
    make_cloud: CloudFactory, emulator, lead: str
) -> None:
    # the cached style is right at first (the server continues prefills) and the server opens a
    # new turn on the third chunk's request (after the first chunk, the second and the style's
    # one probe): its usage reports 6 prompt tokens more than an honoured prefill costs. The
    # paragraph case begins with no glued capital: only the prompt tokens show the new turn
    emulator.configure(prefill_style="assistant")
    with make_cloud() as cloud:
        cache_a_wrong_style(cloud, emulator)
        emulator.inject({"type": "new_turn", "header_tokens": 6, "lead": lead, "skip": 3})
        result, desc, output = run_job(cloud, REQUEST)
        assert desc["status"] == "SUCCEEDED" and result.status == "succeeded", result.error
        assert output == expected(REQUEST, emulator).answer  # no new turn's text committed
        chunks = [cloud.store.get_chunk(result.job_id, i) for i in range(result.chunks)]
        assert [c.prefill_style for c in chunks[:3]] == ["none", "assistant", "vllm"]
        assert [str(step) for step in chunks[2].prefill_ladder] == ["assistant:ignored"]
        assert (
            chunks[2].discarded_completion_tokens > 0
        )  # the new turn's reply was thrown away, not committed
        assert result.prefill_style == "vllm"
        # the style found wrong left the cache; the one the job fell back to was learned in its place
        learned = cloud.store.get_learned_style(emulator.base_url, WRITER)
        assert learned is not None and learned.style == "vllm" and learned.job_id == result.job_id
