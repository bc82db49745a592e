"""``LiveText``: what a terminal prints while a job runs, committed text followed by the draft of the
chunk in flight, append-only and never a passage twice."""

from __future__ import annotations

from longform.live import LiveText


def play(live: LiveText, *views: tuple[str, str | None]) -> list[str]:
    """Feed successive views (committed text past what was seen, current draft); what was printed."""
    return [live.update(committed_new, draft) for committed_new, draft in views]


def test_committed_text_alone_is_printed_as_it_grows() -> None:
    live = LiveText()
    assert play(live, ("Chapter one. ", None), ("", None), ("The keepers ", None)) == [
        "Chapter one. ",
        "",
        "The keepers ",
    ]
    assert live.shown == live.committed == len("Chapter one. The keepers ")
    assert live.revised == 0


def test_a_draft_then_its_commit_prints_nothing_twice() -> None:
    live = LiveText()
    printed = play(
        live,
        ("Chapter one. ", None),
        ("", "The keep"),  # the chunk in flight, checkpointed
        ("", "The keepers of the "),  # a later checkpoint of the same attempt
        ("The keepers of the ", None),  # its commit: exactly the draft
        ("light.", "Next chunk"),  # a commit and the next chunk's first draft in one view
        ("", "Next chunk goes on"),
    )
    assert printed == ["Chapter one. ", "The keep", "ers of the ", "", "light.Next chunk", " goes on"]
    assert "".join(printed) == "Chapter one. The keepers of the light.Next chunk goes on"
    assert live.committed == len("Chapter one. The keepers of the light.")
    assert live.shown == sum(map(len, printed))
    assert live.revised == 0


def test_a_commit_longer_than_the_draft_prints_only_the_rest() -> None:
    live = LiveText()
    printed = play(live, ("", "The keep"), ("The keepers of the light.", None))
    assert printed == ["The keep", "ers of the light."]
    assert live.shown == live.committed == len("The keepers of the light.") and live.revised == 0


def test_a_commit_that_differs_at_the_seam_prints_from_where_they_part() -> None:
    live = LiveText()
    # the draft showed "Hello wor"; the commit filed "Hello, world" (e.g. a held tag, a seam repaired)
    printed = play(live, ("", "Hello wor"), ("Hello, world", None))
    assert printed == ["Hello wor", ", world"]
    assert live.revised == 1
    # shown is where the printing stands in the text (committed + draft), the printed characters
    # are more: a terminal cannot take text back (output.md holds the committed text)
    assert live.shown == live.committed == len("Hello, world")
    assert sum(map(len, printed)) == len("Hello wor") + len(", world")
    # from there on, printing follows the committed text again
    assert play(live, ("", " again"), (" again.", None)) == [" again", "."]
    assert live.shown == len("Hello, world again.") and live.revised == 1


def test_a_shorter_draft_of_a_retried_attempt_prints_nothing_until_it_catches_up() -> None:
    live = LiveText()
    assert play(live, ("Intro. ", None), ("", "The keepers of the li")) == [
        "Intro. ",
        "The keepers of the li",
    ]
    # the attempt died; its retry streams the same chunk again from the start
    assert play(live, ("", "The kee"), ("", "The keepers of"), ("", None)) == ["", "", ""]
    assert live.shown == len("Intro. The keepers of the li")  # what was printed still stands
    assert play(live, ("", "The keepers of the light"), ("", "The keepers of the light, ")) == ["ght", ", "]
    assert live.revised == 0
    assert live.shown == len("Intro. The keepers of the light, ")


def test_a_commit_behind_the_printed_draft_waits_for_the_next_chunk() -> None:
    """The retry committed an earlier checkpoint than the one printed (the dead attempt got further):
    the printed tail is the start of the next chunk's text, printed once."""
    live = LiveText()
    assert play(live, ("", "The keepers of the light")) == ["The keepers of the light"]
    assert play(live, ("The keepers of the ", None)) == [""]
    assert (live.committed, live.shown) == (len("The keepers of the "), len("The keepers of the light"))
    assert play(live, ("", "lighthouse")) == ["house"]
    assert play(live, ("lighthouse", None)) == [""]
    assert live.shown == live.committed == len("The keepers of the lighthouse") and live.revised == 0


def test_shown_totals_over_a_whole_job() -> None:
    live = LiveText()
    chunks = ["Alpha beta gamma. ", "Delta epsilon zeta. ", "Eta theta iota."]
    printed: list[str] = []
    for text in chunks:
        for cut in range(0, len(text), 5):  # drafts every 5 characters, then the commit
            printed.append(live.update("", text[: cut + 1]))
        printed.append(live.update(text, None))
    assert "".join(printed) == "".join(chunks)
    assert live.shown == live.committed == sum(map(len, chunks)) == sum(map(len, printed))
