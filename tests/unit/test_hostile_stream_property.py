"""A hostile provider, generated (issue 15): whole chunks through the real client and the real commit
path against streams built from a grammar of what servers send.

The grammar: content deltas (ASCII, accents, CJK, astral characters; a pair may be split across two
events as a JavaScript proxy slicing UTF-16 code units sends it), ``: ping`` keep-alives, events with
unknown fields, malformed events (``model: 123``, a string ``delta``, unreadable usage, ``choices``
as an object, non-JSON data, a JSON array), usage early, late, twice or never, a ``finish_reason``
from the known vocabulary and beyond, an error inside the stream (OpenRouter's, OpenAI's, vLLM's
shapes, ``finish_reason`` error/abort), ``[DONE]`` or not, LF or CRLF line ends, the body split
into network reads at any byte and truncated at any byte, replies longer than ``max_tokens``.

The invariants, against an oracle that reads the generated events (not the client's code):

- the committed text is exactly the text of the content deltas the client received before the
  stream's end (an error, ``[DONE]``, the truncation, or ``max_tokens`` + the margin), surrogate
  pairs joined and lone surrogates replaced by U+FFFD (counted in ``lone_surrogates``);
- nothing the provider sent is lost: text received is always committed (a chunk with no text may
  fail, and is retried);
- a reply that reports an error never ends ``stop``, and the chunk fails with a provider error;
- no exception escapes except the typed provider errors (and ``ContextExhausted``).

``make test`` runs the ``ci`` profile (bounded, derandomized); ``HYPOTHESIS_PROFILE=long`` runs many
more examples (``bench/hostile_stream.py``). Failures found are kept in ``tests/hypothesis-db``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase, ReadOnlyDatabase
from longform_core.errors import ContextExhausted, ProviderError
from longform_core.job_store import JobStore
from longform_core.provider import OVERRUN_MARGIN_RATIO, OVERRUN_MARGIN_TOKENS

from .stream_harness import RawProvider, first_chunk, run_chunk


class KeepingDatabase(ExampleDatabase):
    """A database that never forgets: hypothesis deletes a saved case once it passes again, which
    would drop a found case from the repository the first time the long profile ran after its fix."""

    def __init__(self, db: ExampleDatabase) -> None:
        super().__init__()
        self._db = db

    def save(self, key: bytes, value: bytes) -> None:
        self._db.save(key, value)

    def fetch(self, key: bytes) -> Iterable[bytes]:
        return self._db.fetch(key)

    def delete(self, key: bytes, value: bytes) -> None:
        pass

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        self._db.save(dest, value)


DATABASE = DirectoryBasedExampleDatabase(str(Path(__file__).resolve().parents[1] / "hypothesis-db"))
_COMMON: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,  # one moto bucket; every example is a fresh job
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
}
# ci: bounded and deterministic (a fixed seed: derandomize would switch the database off); it replays
# the committed cases but writes nothing (a failure there is reproduced by the seed). long: writes
# what it finds, to be committed.
settings.register_profile("ci", max_examples=120, database=ReadOnlyDatabase(DATABASE), **_COMMON)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "5000")),
    database=KeepingDatabase(DATABASE),
    **_COMMON,
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
SEED = 15 if PROFILE == "ci" else None

CHARS = ["a", "b", "z", " ", ".", "\n", "\t", "é", "中", "\U0001f30a", "\U0001f600", "\U00010348"]
KNOWN_FINISHES = ["stop", "length", "eos", "end_turn", "max_tokens", "tool_calls", "content_filter"]
OTHER_FINISHES = ["function_call", "stop_sequence", "recitation", "weird", ""]
ERROR_SHAPES = ["openrouter", "openai", "vllm", "finish_error", "finish_abort", "choice_error"]
NOISE = ["ping", "unknown", "model_123", "delta_string", "bad_usage", "choices_object", "not_json", "array"]
NOISE += ["usage", "usage"]  # a valid usage event, early or twice


# ---- the stream, as events ---------------------------------------------------------------------


@dataclass
class Event:
    """One SSE event (or comment) and what it means to the oracle."""

    raw: str  # the data payload (a comment when ``comment``)
    content: str = ""  # a content delta's text as the client will decode it (maybe a lone surrogate)
    error: bool = False
    finish: str | None = None
    done: bool = False
    comment: bool = False
    echo: bool = False  # a piece of the echoed prefill (not a new token)


def _data(obj: Any) -> str:
    return json.dumps(obj)


def _chunk(delta: Any, finish: str | None = None, **top: Any) -> str:
    return _data(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "model": "m/1",
            **top,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


def content_events(piece: str, split: bool) -> list[Event]:
    """One delta, or (``split``, when the piece has an astral character) two, cut between the two
    UTF-16 code units of its first astral character."""
    at = next((i for i, ch in enumerate(piece) if ord(ch) > 0xFFFF), None)
    if not split or at is None:
        return [Event(_chunk({"content": piece}), content=piece)]
    code = ord(piece[at]) - 0x10000
    high, low = chr(0xD800 + (code >> 10)), chr(0xDC00 + (code & 0x3FF))
    first, second = piece[:at] + high, low + piece[at + 1 :]
    return [
        Event(_chunk({"content": first}), content=first),
        Event(_chunk({"content": second}), content=second),
    ]


def noise_event(kind: str) -> Event:
    raw = {
        "ping": "ping",
        "unknown": _data({"id": "c", "x_gateway": {"latency": 3}, "choices": [], "system_fingerprint": None}),
        "model_123": _chunk({}, model=123),
        "delta_string": _data({"choices": [{"index": 0, "delta": "oops", "finish_reason": None}]}),
        "bad_usage": _data(
            {
                "choices": [],
                "usage": {
                    "prompt_tokens": "n/a",
                    "completion_tokens": "3",
                    "prompt_tokens_details": [1],
                    "estimated_cost": "free",
                },
            }
        ),
        "choices_object": _data({"choices": {"0": {"delta": {}}}}),
        "not_json": "{not json",
        "array": "[1, 2]",
        "usage": _data(
            {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}}
        ),
    }[kind]
    return Event(raw, comment=kind == "ping")


def error_event(shape: str) -> Event:
    raw = {
        "openrouter": _chunk({"content": ""}, "error", error={"code": "server_error", "message": "gone"}),
        "openai": _data({"error": {"message": "The server had an error", "type": "server_error"}}),
        "vllm": _data({"object": "error", "message": "internal", "type": "InternalServerError", "code": 500}),
        "finish_error": _chunk({}, "error"),
        "finish_abort": _chunk({}, "abort"),
        "choice_error": _data(
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {},
                        "finish_reason": None,
                        "error": {"code": 502, "message": "upstream"},
                    }
                ]
            }
        ),
    }[shape]
    return Event(raw, error=True)


# the answer so far of a continuation chunk: the prefill its request ends with, which a server may
# echo at the start of its reply (llama.cpp merges it into the first delta; some send it in pieces).
# Its characters are not in CHARS, so a reply that does not echo it can never begin with it.
SO_FAR = "The keeper climbed the long stair to the lamp room, "
ECHO = ["none", "merged", "pieces"]


def echo_events(how: str, first: str) -> list[Event]:
    """The echo of SO_FAR: merged with the reply's first piece (one event) or in 7-character pieces."""
    if how == "merged":
        return [Event(_chunk({"content": SO_FAR + first}), content=SO_FAR + first)]
    parts = [SO_FAR[i : i + 7] for i in range(0, len(SO_FAR), 7)]
    return [Event(_chunk({"content": p}), content=p, echo=True) for p in parts]


@dataclass
class Stream:
    events: list[Event]
    eol: str
    truncate_at: int | None
    splits: list[int]
    max_tokens: int
    echo: str = "none"  # a continuation chunk when not "none"... or "continue" (no echo)
    body: bytes = b""
    ends: list[int] = field(default_factory=list)  # where each event's payload ends in the body

    def __post_init__(self) -> None:
        out = b""
        for ev in self.events:
            line = (f":{' ' + ev.raw}" if ev.comment else f"data: {ev.raw}").encode("utf-8", "surrogatepass")
            out += line
            self.ends.append(len(out))
            out += (self.eol * 2).encode()
        self.body = out if self.truncate_at is None else out[: self.truncate_at]


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    pieces = draw(st.lists(st.text(st.sampled_from(CHARS), min_size=1, max_size=5), max_size=30))
    continuation = draw(st.sampled_from(["first", "continue", "merged", "pieces"]))
    events: list[Event] = []
    if continuation == "merged" and pieces:
        events.extend(echo_events("merged", pieces.pop(0)))
    elif continuation == "pieces":
        events.extend(echo_events("pieces", ""))
    for piece in pieces:
        events.extend(content_events(piece, draw(st.booleans())))
    for kind in draw(st.lists(st.sampled_from(NOISE), max_size=5)):
        events.insert(draw(st.integers(0, len(events))), noise_event(kind))  # noise between echo pieces too
    finish = draw(st.none() | st.sampled_from(KNOWN_FINISHES + OTHER_FINISHES))
    if finish is not None:
        usage = draw(st.booleans())
        extra = {"usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}} if usage else {}
        events.append(Event(_chunk({}, finish or None, **extra), finish=finish or None))
    if draw(st.integers(0, 3)) == 0:
        events.insert(draw(st.integers(0, len(events))), error_event(draw(st.sampled_from(ERROR_SHAPES))))
    if draw(st.booleans()):
        events.append(Event("[DONE]", done=True))
    stream = Stream(
        events,
        eol=draw(st.sampled_from(["\n", "\r\n"])),
        truncate_at=None,
        splits=[],
        max_tokens=draw(st.integers(1, 30)),
        echo=continuation,
    )
    size = len(stream.body)
    if size and draw(st.integers(0, 3)) == 0:
        stream = Stream(events, stream.eol, draw(st.integers(0, size)), [], stream.max_tokens, continuation)
    stream.splits = draw(st.lists(st.integers(1, max(1, len(stream.body))), max_size=8))
    return stream


# ---- the oracle --------------------------------------------------------------------------------


@dataclass
class Expected:
    text: str
    error: bool
    overran: bool
    finish: str | None


def _decoded(raw: str) -> str:
    """What a UTF-16 reader makes of a string that may hold lone surrogates (U+FFFD for each)."""
    return raw.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def expect(stream: Stream) -> Expected:
    """What the chunk must commit: the new text received (an echo of the prefill taken off)."""
    want = _received(stream)
    if stream.echo in ("merged", "pieces"):
        # the whole prefill echoed (it is long enough to be evidence): stripped; an echo cut short
        # adds nothing
        want.text = want.text[len(SO_FAR) :] if want.text.startswith(SO_FAR) else ""
    return want


def _received(stream: Stream) -> Expected:
    limit = stream.max_tokens + OVERRUN_MARGIN_TOKENS + int(stream.max_tokens * OVERRUN_MARGIN_RATIO)
    received = len(stream.body)
    raw, counted, finish = "", 0, None
    for ev, end in zip(stream.events, stream.ends, strict=True):
        if end > received:
            break  # cut inside (or before) this event's payload: it never parses
        if ev.done:
            break
        if ev.error:
            return Expected(_decoded(raw), True, False, finish)
        if ev.content:
            joins = raw and 0xD800 <= ord(raw[-1]) < 0xDC00 and 0xDC00 <= ord(ev.content[0]) < 0xE000
            counted += 0 if joins or ev.echo else 1
            raw += ev.content
            if counted >= limit and finish is None:
                return Expected(_decoded(raw), False, True, finish)
        finish = ev.finish or finish
    return Expected(_decoded(raw), False, False, finish)


# ---- the property ------------------------------------------------------------------------------


@settings(settings.get_profile(PROFILE))
@seed(SEED)
@given(stream=streams())
def test_a_hostile_stream_commits_exactly_what_was_sent(store: JobStore, stream: Stream) -> None:
    request = {
        "prompt": "Write about lighthouses.",
        "max_tokens_per_request": stream.max_tokens,
        "prefill_style": "assistant",  # no ladder: the reply is taken as the continuation it claims
    }
    before = [first_chunk(SO_FAR)] if stream.echo != "first" else []
    try:
        run = run_chunk(store, RawProvider(stream.body, stream.splits), request, before=before)
    except ContextExhausted:
        run = None  # a length cut with no text and no tokens: the context is full (a typed end)
    want = expect(stream)
    if run is None:
        assert not want.text and want.finish in ("length", "max_tokens") and not want.error
        return
    assert run.error is None or isinstance(run.error, ProviderError)
    if want.text:  # nothing received is lost
        assert run.chunk is not None, f"{len(want.text)} characters received, none committed: {run.error!r}"
    if run.chunk is not None:
        chunk = run.chunk
        assert chunk.text_lead + chunk.text + chunk.held_after == want.text
        assert chunk.lone_surrogates == want.text.count("\ufffd")
        if want.overran:
            assert chunk.finish_reason == "length" and "ignored max_tokens" in (chunk.detail or "")
    if want.error:
        assert isinstance(run.error, ProviderError)  # the chunk fails: retried like a 5xx
        assert run.chunk is None or run.chunk.finish_reason != "stop"
        assert run.manifest.stop_reason != "stop"
    elif run.chunk is not None and run.chunk.finish_reason == "stop":
        assert want.finish in ("stop", "eos", "end_turn", "stop_sequence")
