"""The probe that verifies a prefill style before it is learned (and cached).

A reply's text alone cannot prove that a prefill was continued: llama-cpp-python's server renders a
trailing assistant message as a finished turn, and its model then begins a *new* answer glued to the
text (``...safely acrossJameson's life was...``) without restarting the answer's opening, so nothing
in the reply gives it away. So before a style is kept, one small request asks the same style to
continue the answer cut in the middle of a word (``...lighthouse kee``): a server that continues the
prefill completes the word (``per``); one that opens a new turn starts something new (a capital, a
space, a newline). Greedy, a few tokens: a cheap and decisive question.

The prompt tokens the server reports are a second, free witness, read on every reply that reports
them (``prefill.opens_new_turn``, asked by ``chunk_style.new_turn_shown``): an honoured prefill costs the
last prompt plus what the last chunk generated; a server that closes the prefill as a finished turn
reports an end-of-turn and a new assistant header more (6 tokens on llama-cpp-python's server 0.3.36
and on transformers serve 5.23.0, with SmolLM2's template). A reply that shows one is not kept and the
probe is not even sent. A server that streams no usage (llama-cpp-python) gives no such witness: its
cached style is probed once a job. A style found wrong after it was cached is evicted from the cache
(:func:`evict_style`), so no later job starts on it; the job itself steps down the ladder.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from .continuation import build_body
from .echo import SentPrefill, strip_echo
from .errors import ProviderError
from .job_store import JobStore
from .prefill import Rung
from .request import GenerationRequest
from .services import StreamingProvider

logger = logging.getLogger(__name__)

PROBE_MAX_TOKENS = 4
# the word cut: the last word of at least MIN_WORD letters in the answer's last TAIL characters,
# cut after KEEP letters (the rest is what a continued prefill writes next)
MIN_WORD, KEEP, TAIL = 5, 3, 400
_WORD = re.compile(r"(?<![\w'\u2019-])([a-z]{5,})(?![\w'\u2019-])")


@dataclass(frozen=True)
class ProbeResult:
    passed: bool
    prefill_tail: str  # the end of the cut prefill (for the log)
    reply: str  # what the server answered (echo stripped)
    expected: str  # the rest of the word that was cut


def evict_style(store: JobStore, base_url: str, model: str, rung: Rung) -> bool:
    """Remove the cached style of (``base_url``, ``model``) when it is ``rung``'s, found wrong: no
    later job starts on it (each learns again). True when a record was evicted."""
    cached = store.get_learned_style(base_url, model)
    if cached is None or cached.style != rung.style:
        return False
    store.delete_learned_style(base_url, model)
    logger.warning(
        "prefill style %s (cached by job %s) found wrong on %s: evicted from the cache",
        rung.describe(),
        cached.job_id,
        model,
    )
    return True


def word_cut(text: str, start: int = 0) -> int | None:
    """Where to cut ``text`` inside a lower-case word near its end, after ``start`` (None: no such
    word)."""
    start = max(start, len(text) - TAIL)
    words = list(_WORD.finditer(text, start))
    if not words:
        return None
    return words[-1].start() + KEEP


def continues_the_word(rest: str, reply: str) -> bool:
    """Does ``reply`` carry on inside the cut word? It must begin with a letter that is not a
    capital (a new turn or sentence begins with a capital, a space or a newline); the exact rest
    of the word is the clearest evidence but a model may finish the word differently."""
    if not reply:
        return False
    if reply.startswith(rest[:2]):
        return True
    first = reply[0]
    return first.isalpha() and not first.isupper()


def probe_style(
    provider: StreamingProvider,
    request: GenerationRequest,
    *,
    model: str,
    rung: Rung,
    prefill: str,
    reply: str,
    deadline: float,
    now: float,
) -> ProbeResult | None:
    """Ask ``rung`` to continue ``prefill + reply`` (the text the server has just written after the
    prefill it was sent) cut mid-word inside ``reply``: the model's own words, so a continued
    prefill completes the word. None when it cannot be asked (no word to cut, an error, too little
    time): the style then stands on the reply's own evidence."""
    text = prefill + reply
    at = word_cut(text, len(prefill))
    if at is None or now + 2 > deadline:
        return None
    cut = text[:at]
    rest = text[at:].split(" ", 1)[0]
    body = build_body(
        request, model=model, prefill=cut, max_tokens=PROBE_MAX_TOKENS, prefill_style=rung.style
    )
    body["temperature"] = 0
    try:
        outcome = provider.chat(body, deadline=deadline, stream=False)
    except ProviderError as exc:
        logger.info("the prefill-style probe failed (%s): the style stands on the reply's evidence", exc)
        return None
    echo = strip_echo(
        SentPrefill(cut, answer=cut),
        content=outcome.content,
        reasoning=outcome.reasoning,
        first_delta=outcome.first_delta,
        echo_seen=False,
    )
    return ProbeResult(continues_the_word(rest, echo.content), cut[-40:], echo.content, rest)
