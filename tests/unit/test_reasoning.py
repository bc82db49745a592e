"""Splitting inline <think> reasoning from the answer, and rebuilding the prefill."""

from __future__ import annotations

import itertools

import pytest
from longform_core.reasoning import ThinkTagSplitter, build_prefill, clean_reasoning

RAW = "<think>\nplan\n</think>\n\nAnswer text"
REASONING = "\nplan\n"
ANSWER = "\n\nAnswer text"


def split(pieces: list[str], phase: str = "start") -> tuple[str, str, str]:
    splitter = ThinkTagSplitter(phase)  # type: ignore[arg-type]
    for piece in pieces:
        splitter.feed(piece)
    out = splitter.finish()
    return out.reasoning, out.answer, splitter.phase


def test_whole_text_at_once() -> None:
    reasoning, answer, phase = split([RAW])
    assert (reasoning, answer, phase) == (REASONING, ANSWER, "answer")


@pytest.mark.parametrize("cut", range(len(RAW) + 1))
def test_every_split_point_in_two_pieces(cut: int) -> None:
    assert split([RAW[:cut], RAW[cut:]]) == (REASONING, ANSWER, "answer")


def test_every_split_point_in_three_pieces() -> None:
    for a, b in itertools.combinations(range(len(RAW) + 1), 2):
        got = split([RAW[:a], RAW[a:b], RAW[b:]])
        assert got == (REASONING, ANSWER, "answer"), (a, b)


def test_one_character_at_a_time() -> None:
    assert split(list(RAW)) == (REASONING, ANSWER, "answer")


def test_splitter_reports_it_saw_a_tag() -> None:
    splitter = ThinkTagSplitter()
    splitter.feed(RAW)
    splitter.finish()
    assert splitter.saw_tag
    plain = ThinkTagSplitter()
    plain.feed("Just an answer.")
    plain.finish()
    assert not plain.saw_tag


@pytest.mark.parametrize("cut", range(1, len("<think>\nstill planning")))
def test_open_reasoning_at_the_end_of_a_chunk(cut: int) -> None:
    text = "<think>\nstill planning"
    assert split([text[:cut], text[cut:]]) == ("\nstill planning", "", "reasoning")


@pytest.mark.parametrize("cut", range(len("more plan\n</think>\n\nThe answer.") + 1))
def test_phase_carried_into_the_next_chunk(cut: int) -> None:
    """The previous chunk ended inside <think>: this one starts in the reasoning phase."""
    text = "more plan\n</think>\n\nThe answer."
    assert split([text[:cut], text[cut:]], phase="reasoning") == ("more plan\n", "\n\nThe answer.", "answer")


def test_reasoning_phase_continues_without_a_close_tag() -> None:
    assert split(["still ", "thinking"], phase="reasoning") == ("still thinking", "", "reasoning")


def test_partial_close_tag_at_the_end_stays_reasoning() -> None:
    assert split(["plan </thi"], phase="reasoning") == ("plan </thi", "", "reasoning")


@pytest.mark.parametrize(
    "text", ["Answer without reasoning.", "  indented answer", "<b>bold</b> text", "<", "<thinking about it>"]
)
def test_text_not_starting_with_think_is_all_answer(text: str) -> None:
    for cut in range(len(text) + 1):
        assert split([text[:cut], text[cut:]]) == ("", text, "answer")


def test_think_tag_in_the_middle_of_an_answer_is_answer_text() -> None:
    text = "Use the <think> tag like this: <think>...</think>."
    assert split([text]) == ("", text, "answer")
    # also when the answer phase comes from an earlier chunk
    assert split(["<think>x</think>", "<think>y</think>"], phase="answer") == (
        "",
        "<think>x</think><think>y</think>",
        "answer",
    )


def test_think_tag_after_the_reasoning_block_is_answer_text() -> None:
    text = "<think>a</think>Then <think>b</think>"
    assert split([text]) == ("a", "Then <think>b</think>", "answer")


def test_empty_chunk_stays_at_start() -> None:
    assert split([""]) == ("", "", "start")


# ---- build_prefill ----------------------------------------------------------------------------


def test_prefill_without_reasoning_is_the_answer() -> None:
    for fmt in ("none", "field", "inline"):
        assert (
            build_prefill(answer="So far.", reasoning="", reasoning_format=fmt, reasoning_open=False)
            == "So far."
        )  # type: ignore[arg-type]


def test_prefill_field_closed() -> None:
    got = build_prefill(answer="Hello", reasoning="plan", reasoning_format="field", reasoning_open=False)
    assert got == "<think>\nplan\n</think>\n\nHello"


def test_prefill_field_open() -> None:
    got = build_prefill(answer="", reasoning="half a plan", reasoning_format="field", reasoning_open=True)
    assert got == "<think>\nhalf a plan"


def test_prefill_inline_closed_equals_the_raw_text() -> None:
    reasoning, answer, _ = split([RAW[:9], RAW[9:20], RAW[20:]])
    got = build_prefill(answer=answer, reasoning=reasoning, reasoning_format="inline", reasoning_open=False)
    assert got == RAW


def test_prefill_inline_open_equals_the_raw_text() -> None:
    raw = "<think>\nfirst I will"
    reasoning, answer, phase = split([raw[:4], raw[4:]])
    got = build_prefill(
        answer=answer, reasoning=reasoning, reasoning_format="inline", reasoning_open=phase == "reasoning"
    )
    assert got == raw


def test_prefill_inline_over_several_chunks_equals_the_raw_text() -> None:
    raw = "<think>\nstep one\nstep two\n</think>\n\nThe answer is long."
    reasoning, answer, phase = "", "", "start"
    for piece in (raw[:12], raw[12:30], raw[30:]):
        r, a, phase = split([piece], phase=phase)
        reasoning, answer = reasoning + r, answer + a
        prefill = build_prefill(
            answer=answer, reasoning=reasoning, reasoning_format="inline", reasoning_open=phase == "reasoning"
        )
        assert raw.startswith(prefill)
    assert prefill == raw


def test_clean_reasoning() -> None:
    assert clean_reasoning("\nplan\n") == "plan"


@pytest.mark.parametrize("cut", [RAW.index("</think>") + n for n in range(1, len("</think>"))])
def test_close_tag_cut_between_chunks(cut: int) -> None:
    """Chunk by chunk as the workflow does it: one splitter per chunk, phase and held text carried over."""
    first = ThinkTagSplitter("start")
    first.feed(RAW[:cut])
    out_1 = first.finish(final=False)
    assert first.phase == "reasoning"
    assert out_1.held and "</think>".startswith(out_1.held)
    second = ThinkTagSplitter(first.phase, held=out_1.held)
    second.feed(RAW[cut:])
    out_2 = second.finish(final=True)
    assert (out_1.reasoning + out_2.reasoning, out_1.answer + out_2.answer) == (REASONING, ANSWER)


@pytest.mark.parametrize("cut", range(1, len("<think>")))
def test_open_tag_cut_between_chunks(cut: int) -> None:
    first = ThinkTagSplitter("start")
    first.feed(RAW[:cut])
    out_1 = first.finish(final=False)
    assert (out_1.answer, out_1.reasoning, out_1.held) == ("", "", RAW[:cut])
    second = ThinkTagSplitter(first.phase, held=out_1.held)
    second.feed(RAW[cut:])
    out_2 = second.finish()
    assert (out_2.reasoning, out_2.answer) == (REASONING, ANSWER)
