"""Following a job's text as it is generated: committed text plus the draft of the chunk in flight.

What a terminal shows is append-only, while a draft is superseded by its commit (which may differ
at the seam: an echo stripped, a held tag filed). ``LiveText`` turns the successive views
(committed text grown, latest draft) into what to print next, so the printed text is always the
committed text followed by the newest draft, and never shows a passage twice.
"""

from __future__ import annotations


class LiveText:
    """Append-only printing of committed text and the current draft."""

    def __init__(self) -> None:
        self.committed = 0  # characters of committed text accounted for
        self._draft_shown = ""  # what was printed of the draft past ``committed``
        self.revised = 0  # times a commit differed from the draft already printed

    @property
    def shown(self) -> int:
        """Where the printed text stands: the committed length plus the draft printed after it
        (after a commit that differed from its draft, less than the characters printed)."""
        return self.committed + len(self._draft_shown)

    def update(self, committed_new: str, draft: str | None) -> str:
        """``committed_new``: committed text past what was seen; ``draft``: the current draft's text
        (None: none). Returns what to print now."""
        view = committed_new + (draft or "")
        shown = self._draft_shown
        self.committed += len(committed_new)
        if view.startswith(shown):
            self._draft_shown = draft or ""
            return view[len(shown) :]
        if shown.startswith(view):
            # behind what was printed (a draft of a retried attempt): wait for it to catch up
            self._draft_shown = shown[len(committed_new) :]
            return ""
        # the commit differs from the draft printed: print from where they part (a terminal cannot
        # take text back; the output file holds the committed text)
        common = 0
        for a, b in zip(shown, view, strict=False):
            if a != b:
                break
            common += 1
        self.revised += 1
        self._draft_shown = draft or ""
        return view[common:]
