"""prefill.py: the ladder's steps and the evidence that a prefill was ignored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from longform_core.prefill import LearnedStyle, Rung, next_rung, starts_over, style_digest, trim_prefill

ANSWER = "The keepers of the Eddystone light climbed the tower every evening at dusk"


def test_the_ladder_in_order() -> None:
    rung: Rung | None = Rung("assistant")
    seen = []
    while rung is not None:
        seen.append(rung.style)
        rung = next_rung(rung, "refused", ladder=True)
    assert seen == ["assistant", "vllm", "prefix", "continue_message"]


def test_trailing_whitespace_keeps_the_style_and_trims() -> None:
    assert next_rung(Rung("assistant"), "trailing_whitespace", ladder=False) == Rung("assistant", trim=True)
    # trimmed already: the refusal is not about whitespace after all, step down
    assert next_rung(Rung("assistant", trim=True), "trailing_whitespace", ladder=True) == Rung(
        "vllm", trim=True
    )
    assert next_rung(Rung("assistant"), "refused", ladder=False) is None  # an explicit style


def test_trim_prefill() -> None:
    assert trim_prefill("abc \n\n") == ("abc", " \n\n")
    assert trim_prefill("abc") == ("abc", "")


def ignored(content: str, *, raw: str | None = None, answer: str = ANSWER, tokens: int = 5, **kw) -> bool:
    return starts_over(
        answer_so_far=answer,
        reasoning_so_far=kw.get("reasoning_so_far", ""),
        raw_content=content if raw is None else raw,
        raw_reasoning=kw.get("raw_reasoning", ""),
        content=content,
        reasoning=kw.get("reasoning", ""),
        completion_tokens=tokens,
        echo_seen=kw.get("echo_seen", False),
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (ANSWER[:45] + " but then", True),  # the opening again, sampled differently
        ("  " + ANSWER[:40], True),  # leading whitespace does not hide it
        ("<think>\nhmm\n</think>\n\n" + ANSWER[:40], True),  # a fresh think block, then the opening
        (" and they slept at dawn.", False),  # a continuation
        ("The keepers of the", False),  # shorter than the opening: could be the model's own words
        (ANSWER[:39] + "X", False),  # one character off within the opening: not proof
    ],
)
def test_starts_over(content: str, expected: bool) -> None:
    assert ignored(content) is expected


def test_a_short_answer_is_never_judged() -> None:
    assert not ignored("The keepers climbed", answer="The keepers")


def test_the_whole_reply_stripped_as_an_echo_is_a_restart_only_without_an_echo_history() -> None:
    # the reply was the answer so far again (stripped as an "echo"), and usage counts its tokens
    assert ignored("", raw=ANSWER)
    assert not ignored("", raw=ANSWER, echo_seen=True)  # an echoing server cut short
    assert not ignored("", raw=ANSWER, tokens=0)  # an echo is not counted in usage


def test_reasoning_that_starts_over() -> None:
    thought = "Okay, the user wants a piece about the keepers of the light."
    assert ignored("", answer="", reasoning_so_far=thought, reasoning=thought[:45] + " Let me")
    assert not ignored("", answer="", reasoning_so_far=thought, reasoning=" Then the answer.")


def test_learned_style_freshness_and_key() -> None:
    now = datetime.now(UTC)
    learned = LearnedStyle(
        base_url="https://x/v1", model="m", style="vllm", learned_at=now - timedelta(days=6)
    )
    assert learned.fresh(now, 7 * 24 * 3600) and not learned.fresh(now, 5 * 24 * 3600)
    assert (
        style_digest("https://x/v1/", "m")
        == style_digest("https://x/v1", "m")
        != style_digest("https://x/v1", "n")
    )


def test_a_new_turn_is_told_by_its_prompt_and_its_glued_capital() -> None:
    # llama-server --no-prefill-assistant: 82 prompt tokens where 76 were expected, "manCaptain"
    def judged(content: str, prompt: int | None) -> bool:
        return starts_over(
            answer_so_far=ANSWER + " and a kind man",
            reasoning_so_far="",
            raw_content=content,
            content=content,
            reasoning="",
            completion_tokens=32,
            echo_seen=False,
            prompt_tokens=prompt,
            expected_prompt_tokens=76,
        )

    assert judged("Captain Jameson's name was a sailor.", 82)
    assert not judged("Captain Jameson's name was a sailor.", 77)  # re-tokenised seam: continued
    assert not judged(" who loved the sea.", 82)  # a continuation, whatever the count
    assert not judged("Captain Jameson's name was a sailor.", None)  # no usage: not judged
