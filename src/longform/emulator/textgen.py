"""Deterministic English-like text for the emulator's model.

Every function here builds a list of *pieces*: strings that match ``\\s*\\S+`` and of
which only the first may lack leading whitespace. Joining the pieces gives the text and
``tokenize`` of that text gives the pieces back, so a piece is exactly one emulator token.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

NOUNS: tuple[str, ...] = (
    "plan", "system", "approach", "structure", "question", "idea", "process", "detail",
    "result", "pattern", "context", "method", "outcome", "framework", "principle", "story",
    "argument", "example", "chapter", "section", "theme", "decision", "problem", "solution",
    "model", "design", "goal", "reader", "writer", "team", "project", "draft", "record",
    "signal", "change", "history", "journey", "balance", "foundation", "perspective",
    "strategy", "practice", "effort", "insight", "boundary", "measure", "source", "choice",
    "path", "moment", "season", "language", "method", "network", "garden", "harbor",
)  # fmt: skip
ADJECTIVES: tuple[str, ...] = (
    "clear", "careful", "simple", "broad", "steady", "practical", "useful", "central",
    "early", "larger", "quiet", "strong", "gradual", "common", "distinct", "familiar",
    "modest", "durable", "patient", "honest", "precise", "flexible", "natural", "deeper",
    "wider", "final", "initial", "shared", "local", "general", "specific", "subtle",
    "obvious", "complex", "gentle", "bold", "reliable", "consistent", "open", "remarkable",
)  # fmt: skip
VERBS: tuple[str, ...] = (
    "shapes", "supports", "explains", "reveals", "connects", "extends", "frames", "guides",
    "strengthens", "clarifies", "follows", "changes", "defines", "improves", "reflects",
    "tests", "anchors", "informs", "limits", "balances", "captures", "describes",
    "highlights", "organizes", "reinforces", "builds", "carries", "links", "grounds",
    "outlines", "questions", "rewards",
)  # fmt: skip
ADVERBS: tuple[str, ...] = (
    "again", "carefully", "clearly", "quietly", "today", "steadily", "naturally",
    "gradually", "consistently", "directly", "together", "properly", "slowly", "firmly",
)  # fmt: skip
STOPWORDS: frozenset[str] = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers him his how i if in into is
    it its itself just let me more most my no nor not now of off on once only or other our
    ours out over own please same she should so some such than that the their theirs them
    then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours write writing
    written words word token tokens long longer short essay article text make give tell
    explain describe create generate produce detailed thorough full complete emulator
    answer_tokens reasoning_tokens need want wants like using use""".split()  # noqa: SIM905
)

# A slot is either literal text or one of these markers.
_N, _A, _V, _D = "\x00N", "\x00A", "\x00V", "\x00D"
Template = tuple[str, ...]

ANSWER_CORES: tuple[Template, ...] = (
    ("The", _A, _N, _V, "the", _N),
    ("Each", _N, _V, "a", _A, _N),
    ("This", _N, _V, "the", _A, _N),
    ("A", _A, _N, "often", _V, "the", _N),
    ("In", "practice,", "the", _N, _V, "every", _N),
    ("Over", "time,", "the", _N, _V, "our", _N),
    ("Our", _N, _V, "the", _N),
    ("Every", _A, _N, _V, "its", _N),
    ("Seen", "this", "way,", "the", _A, _N, _V, "the", _N),
    ("No", _N, _V, "a", _N, "alone"),
)
REASONING_CORES: tuple[Template, ...] = (
    ("Let", "me", "plan", "the", _N),
    ("I", "should", "cover", "the", _A, _N),
    ("Hmm,", "maybe", "the", _N, _V, "the", _N),
    ("Wait,", "the", _A, _N, "matters", "here"),
    ("So", "the", "answer", "needs", "a", _A, _N),
    ("First,", "I", "will", "outline", "the", _N),
    ("Then", "I", "can", "show", "how", "the", _N, _V, "the", _N),
    ("Maybe", "I", "should", "start", "with", "the", _N),
    ("Actually,", "the", "user", "probably", "expects", "a", _A, _N),
)
EXTENSIONS: dict[int, tuple[Template, ...]] = {
    1: ((_D,),),
    2: (
        ("in", "practice"), ("over", "time"), ("by", "design"), ("for", "now"),
        ("at", "scale"), ("in", "turn"), ("so", "far"),
    ),
    3: (("with", "the", _N), ("for", "every", _N), ("across", "each", _N), ("beyond", "the", _N)),
    4: (("in", "the", _A, _N), ("through", "a", _A, _N), ("while", "the", _N, "grows")),
    5: (("and", "the", _N, _V, "it"), ("so", "the", _N, _V, "everything")),
}  # fmt: skip
SHORT: dict[int, tuple[Template, ...]] = {
    1: (("Indeed",), ("Exactly",), ("Naturally",), ("Certainly",)),
    2: (("That", "matters"), ("This", "helps"), ("It", "works"), ("Consider", "this")),
    3: (("The", _N, "matters"), ("This", _V, "everything"), ("Each", _N, "counts")),
    4: (("The", _A, _N, "matters"), ("Each", _N, _V, "it"), ("That", _V, "the", _N)),
}

_PADDING: dict[int, list[str]] = {
    1: ["today"],
    2: ["in", "depth"],
    3: ["in", "real", "depth"],
    4: ["in", "some", "real", "depth"],
}
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]")


def topic_words(text: str, limit: int = 8) -> list[str]:
    """Distinct significant lower-case words of ``text``, in order of appearance."""
    seen: list[str] = []
    for match in _WORD_RE.finditer(text):
        word = match.group(0).lower()
        if len(word) < 3 or word in STOPWORDS or word in seen:
            continue
        seen.append(word)
        if len(seen) >= limit:
            break
    return seen


class _Writer:
    """Fill word slots from the vocabulary, mixing in topic words."""

    def __init__(self, rng: random.Random, topics: Sequence[str]) -> None:
        self.rng = rng
        self.topics = tuple(topics)

    def noun(self) -> str:
        if self.topics and self.rng.random() < 0.18:
            return self.rng.choice(self.topics)
        return self.rng.choice(NOUNS)

    def fill(self, template: Template) -> list[str]:
        rng = self.rng
        out: list[str] = []
        for slot in template:
            if slot == _N:
                out.append(self.noun())
            elif slot == _A:
                out.append(rng.choice(ADJECTIVES))
            elif slot == _V:
                out.append(rng.choice(VERBS))
            elif slot == _D:
                out.append(rng.choice(ADVERBS))
            else:
                out.append(slot)
        for i in range(len(out) - 1):
            following = out[i + 1]
            if out[i] in ("a", "A") and following[0] in "aeiou" and not following.startswith(("use", "uni")):
                out[i] += "n"
        return out

    def sentence(self, length: int, cores: Sequence[Template]) -> list[str]:
        """Exactly ``length`` (>= 1) words ending with a full stop."""
        rng = self.rng
        if length <= 4:
            words = self.fill(rng.choice(SHORT[length]))
        else:
            words = self.fill(rng.choice([c for c in cores if len(c) <= length]))
            rest = length - len(words)
            while rest > 0:
                size = min(rest, rng.choice((2, 3, 3, 4, 4, 5)))
                if rest - size == 1 and size > 2:
                    size -= 1  # avoid a lone trailing adverb after a long clause
                ext = self.fill(rng.choice(EXTENSIONS[size]))
                if ext[0] in ("and", "while") or (ext[0] == "so" and len(ext) > 2):
                    words[-1] += ","
                words.extend(ext)
                rest -= size
        words[-1] = words[-1].rstrip(",") + "."
        return words


def _emit(out: list[str], words: Sequence[str], first_prefix: str) -> None:
    out.append(first_prefix + words[0] if out else words[0])
    out.extend(" " + w for w in words[1:])


def _sentence_length(rng: random.Random, remaining: int) -> int:
    length = rng.randint(7, 18)
    if remaining - length < 5:
        return remaining
    return length


def answer_pieces(rng: random.Random, n: int, title: Sequence[str], topics: Sequence[str]) -> list[str]:
    """A markdown-ish answer of exactly ``n`` pieces: title, parts, paragraphs."""
    out: list[str] = []
    if n <= 0:
        return out
    writer = _Writer(rng, topics)
    heading = ["#", *title]
    if n >= len(heading) + 12:
        out.append("#")
        out.extend(" " + w for w in title)
    part = 0
    paragraphs_left = rng.randint(1, 2)  # the introduction before Part 1
    while len(out) < n:
        remaining = n - len(out)
        # a new paragraph, maybe preceded by a section heading
        if paragraphs_left <= 0:
            name = [writer.noun().capitalize(), "and", rng.choice(NOUNS).capitalize()]
            if rng.random() < 0.4:
                name = [rng.choice(ADJECTIVES).capitalize(), writer.noun().capitalize()]
            section = ["##", "Part", f"{part + 1}:", *name]
            if remaining >= len(section) + 12:
                part += 1
                _emit(out, section, "\n\n")
                remaining = n - len(out)
            paragraphs_left = rng.randint(2, 4)
        paragraphs_left -= 1
        sentences = rng.randint(3, 6)
        prefix = "\n\n"
        while sentences > 0 and remaining > 0:
            words = writer.sentence(_sentence_length(rng, remaining), ANSWER_CORES)
            _emit(out, words, prefix)
            prefix = " "
            sentences -= 1
            remaining = n - len(out)
    return out


def reasoning_pieces(rng: random.Random, n: int, topics: Sequence[str]) -> list[str]:
    """Exactly ``n`` pieces of "thinking" prose: plain paragraphs, no headings."""
    out: list[str] = []
    if n <= 0:
        return out
    writer = _Writer(rng, topics)
    about = list(topics[:3]) or ["something", "useful"]
    first = ["Okay,", "the", "user", "wants", "a", "piece", "about", *about]
    if n <= len(first):
        words = first[:n]
        words[-1] = words[-1].rstrip(",") + "."
        _emit(out, words, "")
        return out
    if n - len(first) < 5:
        first += _PADDING[n - len(first)]
    first[-1] = first[-1].rstrip(",") + "."
    _emit(out, first, "")
    prefix = " "
    while len(out) < n:
        remaining = n - len(out)
        sentences = rng.randint(2, 5)
        while sentences > 0 and remaining > 0:
            words = writer.sentence(_sentence_length(rng, remaining), REASONING_CORES)
            _emit(out, words, prefix)
            prefix = " "
            sentences -= 1
            remaining = n - len(out)
        prefix = "\n\n"
    return out


def title_words(text: str, fallback: Callable[[], str]) -> list[str]:
    """Up to six capitalised significant words of ``text`` for the heading."""
    words = [w.capitalize() for w in topic_words(text, limit=6)]
    while len(words) < 2:
        words.append(fallback().capitalize())
    return words
