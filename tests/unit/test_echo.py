"""The prefill-echo rule (echo.py), including the ambiguous cases it must leave alone."""

from __future__ import annotations

import pytest
from longform_core.echo import ECHO_MIN_CHARS, MERGED_DELTA_MIN_CHARS, SentPrefill, strip_echo

LONG = "Once upon a time, a sailor named Jo kept the light at the end of the mole."  # >= 32 chars
SHORT = "Once upon a time"  # a user's own few-word start: < 32 chars


def strip(
    prefill: str, content: str, *, reasoning: str = "", first_delta: str | None = None, seen: bool = False
):
    return strip_echo(
        SentPrefill(prefill), content=content, reasoning=reasoning, first_delta=first_delta, echo_seen=seen
    )


def test_thresholds_are_what_the_rule_says() -> None:
    assert len(LONG) >= ECHO_MIN_CHARS > len(SHORT) >= MERGED_DELTA_MIN_CHARS


def test_a_full_echo_of_a_long_prefill_is_stripped_exactly() -> None:
    out = strip(LONG, LONG + " He was old.")
    assert (out.content, out.verdict, out.stripped_chars) == (" He was old.", "stripped", len(LONG))


def test_a_reply_that_does_not_start_with_the_prefill_is_untouched() -> None:
    out = strip(LONG, " He was old.")
    assert (out.content, out.verdict, out.stripped_chars) == (" He was old.", "none", 0)


def test_no_prefill_no_echo() -> None:
    assert strip("", "Hello").verdict == "none"


def test_short_prefill_followed_by_the_same_words_is_kept_as_ambiguous() -> None:
    # "Once upon a time" + "Once upon a time there was..." may be what the model meant: keep it
    out = strip(SHORT, SHORT + " there was a lighthouse.")
    assert out.verdict == "kept_ambiguous"
    assert out.content == SHORT + " there was a lighthouse."


def test_short_prefill_split_across_deltas_without_history_is_kept() -> None:
    out = strip(SHORT, SHORT + ", a keeper", first_delta="Once")
    assert out.verdict == "kept_ambiguous"


def test_short_prefill_merged_with_new_text_in_the_first_delta_is_llama_cpps_signature() -> None:
    out = strip(SHORT, SHORT + ", a keeper", first_delta=SHORT + ",")
    assert (out.content, out.verdict) == (", a keeper", "stripped")


def test_a_first_delta_that_is_exactly_the_prefill_is_not_merged_evidence() -> None:
    # one delta equal to the prefill could be one (long) token the model chose: no evidence
    assert strip(SHORT, SHORT + SHORT, first_delta=SHORT).verdict == "kept_ambiguous"


def test_a_very_short_prefill_is_never_taken_for_merged() -> None:
    out = strip("Ha", "Haha!", first_delta="Haha!")
    assert out.verdict == "kept_ambiguous"
    assert out.content == "Haha!"


def test_once_an_echo_was_seen_short_prefills_are_stripped_too() -> None:
    out = strip(SHORT, SHORT + " there was", seen=True)
    assert (out.content, out.verdict) == (" there was", "stripped")


def test_once_an_echo_was_seen_a_reply_without_it_is_recorded_absent() -> None:
    out = strip(SHORT, " there was", seen=True)
    assert (out.content, out.verdict) == (" there was", "absent")


@pytest.mark.parametrize("seen", [False, True])
def test_an_echo_cut_short_adds_nothing(seen: bool) -> None:
    out = strip(LONG, LONG[:20], seen=seen)
    assert (out.content, out.verdict, out.stripped_chars) == ("", "stripped", 20)


def test_a_short_reply_that_is_a_prefix_of_a_short_prefill_is_kept_without_evidence() -> None:
    assert strip(SHORT, "Once").content == "Once"


def test_the_echo_of_an_echo_only_reply_is_empty() -> None:
    out = strip(LONG, LONG)
    assert (out.content, out.verdict) == ("", "stripped")


def test_reasoning_server_echo_split_between_reasoning_and_content() -> None:
    reasoning, answer = "First, list the keepers of the light in order.", "The first keeper"
    prefill = SentPrefill(f"<think>\n{reasoning}\n</think>\n\n{answer}", reasoning=reasoning, answer=answer)
    out = strip_echo(
        prefill,
        content=answer + " was Jo.",
        reasoning="\n" + reasoning + "\n",
        first_delta=None,
        echo_seen=False,
    )
    assert out.verdict == "stripped"
    assert out.content == " was Jo."
    assert out.reasoning == "\n"


def test_reasoning_server_echo_while_still_reasoning() -> None:
    reasoning = "First, list the keepers of the light in order, then"
    prefill = SentPrefill(f"<think>\n{reasoning}", reasoning=reasoning)
    out = strip_echo(
        prefill, content="", reasoning=reasoning + " their dates.", first_delta=None, echo_seen=False
    )
    assert (out.reasoning, out.content, out.verdict) == (" their dates.", "", "stripped")


def test_reasoning_repeated_but_answer_not_is_no_echo() -> None:
    reasoning, answer = "First, list the keepers of the light in order.", "The first keeper"
    prefill = SentPrefill(f"<think>\n{reasoning}\n</think>\n\n{answer}", reasoning=reasoning, answer=answer)
    out = strip_echo(
        prefill, content="Something else", reasoning=reasoning, first_delta=None, echo_seen=False
    )
    assert out.verdict == "none"
    assert out.reasoning == reasoning


def test_the_whole_inline_prefill_echoed_in_content() -> None:
    text = "<think>\nplan the chapters\n</think>\n\nChapter one begins"
    prefill = SentPrefill(text, reasoning="plan the chapters", answer="Chapter one begins")
    out = strip_echo(prefill, content=text + " at dawn.", reasoning="", first_delta=None, echo_seen=False)
    assert (out.content, out.verdict) == (" at dawn.", "stripped")
