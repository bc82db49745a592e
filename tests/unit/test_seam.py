"""seam.py: the continue-message seam (preamble, overlap, whitespace), a trimmed prefill, the stop checks."""

from __future__ import annotations

import pytest
from longform_core.preamble import may_be_preamble
from longform_core.seam import (
    after_trimmed_prefill,
    clean_continuation,
    longest_overlap,
    only_repeats,
    repair_whitespace,
    strip_preamble,
    stuck_repeating,
    undecided,
)

SO_FAR = "The keeper climbed the hundred steps of the tower every evening, and the keeper lit the lamp"


@pytest.mark.parametrize(
    ("new", "preamble"),
    [
        ("Sure, continuing where I left off:\n\n at dusk.", "Sure, continuing where I left off:\n\n"),
        ("Continuing where I left off: at dusk.", "Continuing where I left off: "),
        ("Sure! Here's the continuation:\n at dusk.", "Sure! Here's the continuation:\n"),
        ("Okay, picking up where I stopped:\n\nat dusk.", "Okay, picking up where I stopped:\n\n"),
        ("Sure, continuing.\n\nat dusk.", "Sure, continuing.\n\n"),
        ("Certainly!\n\nat dusk.", "Certainly!\n\n"),
        ("Resuming from the lamp... at dusk.", "Resuming from the lamp... "),
    ],
)
def test_preambles_are_removed(new: str, preamble: str) -> None:
    assert strip_preamble(new) == (new[len(preamble) :], preamble)


@pytest.mark.parametrize(
    "new",
    [
        "Continuing the tradition of his father, he lit the lamp.",  # the answer's own sentence
        "Continuing, he lit the lamp.",  # no colon: could be text
        "Sure enough, the lamp went out.",  # "sure" but not an acknowledgement
        "Note: the lamp was lit at dusk.",  # a colon, but no continuing phrase
        "Okay, so the keeper said: light it.",  # an acknowledgement with no continuing phrase
        "Continuing where I left off:",  # nothing after it: kept rather than emptied
        "Here is the continuation of a very long preamble that rambles on and on about what it will "
        "do next for far too many characters to be one:\nat dusk.",
    ],
)
def test_ambiguous_first_lines_are_kept(new: str) -> None:
    assert strip_preamble(new) == (new, "")


def test_longest_overlap_needs_twenty_characters() -> None:
    assert longest_overlap(SO_FAR, "and the keeper lit the lamp at dusk") == len(
        "and the keeper lit the lamp"
    )
    assert longest_overlap(SO_FAR, "the lamp at dusk") == 0  # 8 characters: could be chance
    assert longest_overlap(SO_FAR, " at dusk") == 0


def test_the_longest_overlap_wins() -> None:
    so_far = "abc abc abc abc abc abc abc abc"
    assert longest_overlap(so_far, "abc abc abc abc abc abc X") == len("abc abc abc abc abc abc")


@pytest.mark.parametrize(
    ("so_far", "new", "out", "done"),
    [
        (SO_FAR, "at dusk.", " at dusk.", "inserted_space"),  # "lampat" never occurs
        (SO_FAR, " at dusk.", " at dusk.", ""),
        ("He climbed.", "Then he rested.", " Then he rested.", "inserted_space"),
        ("Value is 3.", "14 exactly", "14 exactly", ""),  # a number, not a sentence
        ("Seen this way,", "the method", " the method", "inserted_space"),  # found by the cut points
        ("It costs 1,", "000 francs", "000 francs", ""),  # a number
        ("three things:", "light, lens", " light, lens", "inserted_space"),
        ("in practice.", "## Part 1: Lamps", "\n\n## Part 1: Lamps", "inserted_paragraph"),
        # ambiguous: no evidence that "lighthouse" is a word here: the common case wins
        ("the light", "house stood", " house stood", "inserted_space"),
        ("in 19", "84 he", "84 he", ""),  # digits: a number cut in two
        ("a lighthouse, a light", "house stood", "house stood", ""),  # "lighthouse" occurs: a cut word
        ("Paragraph one.\n\n", "\n\nParagraph two.", "Paragraph two.", "dropped_leading"),
        ("word ", "next", "next", ""),
    ],
)
def test_whitespace_repair(so_far: str, new: str, out: str, done: str) -> None:
    assert repair_whitespace(so_far, new) == (out, done)


def test_clean_continuation_overlap_preamble_and_dropped_space() -> None:
    new = "Sure, continuing where I left off:\n\nand the keeper lit the lampat dusk."
    # a preamble, 27 characters repeated, then the next word glued on: all three repaired
    seam = clean_continuation(SO_FAR, new)
    assert seam.preamble.startswith("Sure")
    assert seam.overlap_chars == len("and the keeper lit the lamp")
    assert (seam.text, seam.whitespace) == (" at dusk.", "inserted_space")
    seam = clean_continuation(SO_FAR, "Sure, continuing where I left off:\n\nat dusk.")
    assert (seam.text, seam.overlap_chars, seam.whitespace) == (" at dusk.", 0, "inserted_space")


def test_clean_continuation_leaves_a_clean_reply_alone() -> None:
    seam = clean_continuation(SO_FAR, " at dusk, and slept at dawn.")
    assert (seam.text, seam.overlap_chars, seam.preamble, seam.whitespace) == (
        " at dusk, and slept at dawn.",
        0,
        "",
        "",
    )


def test_after_a_trimmed_prefill() -> None:
    assert after_trimmed_prefill(" ", " lit").text == "lit"  # the stored space is the seam
    assert after_trimmed_prefill(" ", "lit").text == "lit"
    assert after_trimmed_prefill("\n\n", "\n\nNext").text == "Next"
    assert after_trimmed_prefill("", " lit").text == " lit"


def test_only_repeats() -> None:
    assert only_repeats(SO_FAR, "climbed the hundred steps of the tower every evening")
    assert not only_repeats(SO_FAR, "climbed")  # too short to tell
    assert not only_repeats(SO_FAR, "climbed the hundred steps of the tower every morning")


def test_stuck_repeating() -> None:
    passage = "".join(f"word{i} " for i in range(40))  # 270 characters
    assert not stuck_repeating("intro " + passage * 2, min_chars=200, max_repeats=3)
    assert stuck_repeating("intro " + passage * 3, min_chars=200, max_repeats=3)
    assert stuck_repeating("intro " + "la " * 400, min_chars=200, max_repeats=3)  # a short loop
    assert not stuck_repeating(
        passage * 3 + "and then something else entirely " * 8, min_chars=200, max_repeats=3
    )
    assert not stuck_repeating(passage * 5, min_chars=200, max_repeats=0)


# ---- a continue-message reply cut short: held back while it may be a preamble or a repeat (item 6)

PREAMBLES = [
    "Sure, continuing where I left off:\n\n",
    "Okay!\n\n",
    "Here's the continuation of the essay...\n",
    "Of course. Let me continue from where we stopped:\n",
    "Continuing:\n\n",
]


@pytest.mark.parametrize("preamble", PREAMBLES)
def test_every_cut_of_a_preamble_may_be_a_preamble(preamble: str) -> None:
    assert strip_preamble(preamble + "The rest.")[1] == preamble  # the whole one is recognised
    for cut in range(len(preamble) + 1):
        assert may_be_preamble(preamble[:cut]), repr(preamble[:cut])


@pytest.mark.parametrize(
    "text",
    [
        "The keepers",
        "Continuing the tradition, the",
        "Sure thing",
        "measure across",
        "Sure, continuing where I left off:\n\nThe",
    ],
)
def test_answer_text_is_not_a_cut_preamble(text: str) -> None:
    assert not may_be_preamble(text)


def test_undecided_fragments_are_a_cut_preamble_or_the_start_of_a_repeat() -> None:
    so_far = "Each keeper kept a log, and the light was a measure across each strategy."
    assert undecided(so_far, "Sure, continuing where I")
    assert undecided(so_far, "Sure, continuing where I left off:\n\nmeasure across")  # a cut overlap
    assert undecided(so_far, "strategy.")  # a whole overlap shorter than MIN_OVERLAP_CHARS
    assert not undecided(so_far, "Sure, continuing where I left off:\n\nThe next keeper")
    assert not undecided(so_far, "The next keeper")
    assert not undecided("", "Sure")


CODE_SO_FAR = "Here is the loader:\n\n```python\ndef load(path):\n    with open(path) as f:\n"


def test_a_code_fence_open_at_the_seam_is_not_reopened() -> None:
    seam = clean_continuation(CODE_SO_FAR, "```python\n        return f.read()\n```\n")
    assert seam.text == "        return f.read()\n```\n"
    assert seam.preamble == "```python\n"
    # with a preamble before it
    seam = clean_continuation(CODE_SO_FAR, "Sure, continuing:\n\n```python\n        return f.read()\n")
    assert seam.text == "        return f.read()\n"


def test_a_closing_fence_is_never_stripped() -> None:
    seam = clean_continuation(CODE_SO_FAR + "        return f.read()\n", "```\n\nThat is all.")
    assert seam.text == "```\n\nThat is all."
    # no fence open at the seam: an opening fence is the answer's own
    prose = "The loader comes next."
    assert clean_continuation(prose, "\n\n```python\nx = 1\n```").text == "\n\n```python\nx = 1\n```"
    assert clean_continuation(prose + "\n\n", "```python\nx = 1\n```").text == "```python\nx = 1\n```"
