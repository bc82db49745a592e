"""The README is the front door: every page under docs/ is one click from it, and every relative link in
README.md and docs/*.md reaches a file that exists and, with a #fragment, a heading of that file
(GitHub's anchors: lower case, punctuation dropped, spaces as hyphens)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def anchors(text: str) -> set[str]:
    """GitHub's heading anchors of a Markdown text (repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    in_fence = False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if in_fence or not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def links(text: str) -> list[str]:
    out, in_fence = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            out += LINK.findall(line)
    return out


def broken_links(doc: Path) -> list[str]:
    broken = []
    for target in links(doc.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):  # https:, mailto: ...
            continue
        path, _, fragment = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            broken.append(f"{target}: no file {file.name}")
        elif fragment and file.suffix == ".md" and fragment not in anchors(file.read_text(encoding="utf-8")):
            broken.append(f"{target}: no heading #{fragment} in {file.name}")
    return broken


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_and_a_heading(doc: Path) -> None:
    assert broken_links(doc) == []


def test_every_docs_page_is_one_click_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in links(readme)}
    pages = {page.resolve() for page in (ROOT / "docs").glob("*.md")}
    assert sorted(p.name for p in pages - linked) == []


def test_the_link_check_sees_a_wrong_anchor_and_a_missing_page(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Title\n\n## `longform batch`, locally\n\n## Title\n")
    doc = tmp_path / "b.md"
    doc.write_text(
        "[ok](a.md#longform-batch-locally) [ok](a.md#title-1) [bad](a.md#longform-batch) "
        "[gone](c.md) [web](https://example.com)\n```\n[not a link](nowhere.md)\n```\n"
    )
    assert anchors((tmp_path / "a.md").read_text()) == {"title", "longform-batch-locally", "title-1"}
    assert broken_links(doc) == [
        "a.md#longform-batch: no heading #longform-batch in a.md",
        "c.md: no file c.md",
    ]
