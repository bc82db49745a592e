"""The batch input format: JSONL, one long generation per line. Pure: no I/O.

Two line shapes are accepted, freely mixed:

- the OpenAI Batch shape users already have::

      {"custom_id": "acme", "method": "POST", "url": "/v1/chat/completions",
       "body": {"model": "...", "messages": [...], "max_tokens": 30000, "max_chunks": 40}}

  ``body`` is a chat request plus any longform request field (``../request.py``: ``max_output_tokens``,
  ``max_chunks``, ``prefill_style``, ...). ``max_tokens`` / ``max_completion_tokens`` (the whole
  answer's budget in a chat request) become ``max_output_tokens`` (the job's budget: the answer may
  take many requests); message content given as text parts is joined into one string.
- a plain prompt: ``{"custom_id": "acme", "prompt": "..."}`` (any other request field beside it).
  ``custom_id`` may be left out here: it is then ``line-{n}``.

:func:`parse_batch` validates the whole file before anything starts and raises ``BatchInvalid``
(``errors.py``) naming every bad line by its number (1-based, as an editor shows it) and field;
a duplicate ``custom_id`` is an error, so is a file over the configured lines or bytes. Blank lines
are skipped (their numbers still count).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..errors import BatchInvalid, LineProblem, Problem, RequestInvalid
from ..request import NOT_TEXT, GenerationRequest, is_text, parse_request, text_problems

CHAT_URLS = frozenset({"/v1/chat/completions", "/chat/completions", "/v1/openai/chat/completions"})
OPENAI_KEYS = frozenset({"custom_id", "method", "url", "body"})
CUSTOM_ID_MAX = 512
# a batch whose every line is bad would make an error file as large as the batch: the first this
# many problems are named, then how many more there were
MAX_PROBLEMS_LISTED = 1000
DEFAULT_MAX_LINES = 10_000  # DeepInfra's and OpenAI's batch APIs take 50,000
DEFAULT_MAX_BYTES = 52_428_800  # 50 MiB


@dataclass(frozen=True)
class BatchLine:
    """One line of a batch: where it was, the caller's id for it and the job it becomes."""

    line: int  # 1-based line number in the file
    custom_id: str
    request: GenerationRequest


def whole_batch_problem(message: str) -> BatchInvalid:
    """A problem of the file as a whole (its size, its line count, nothing in it)."""
    return BatchInvalid([], whole=[Problem("(batch)", message)])


def content_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_batch(
    data: bytes,
    *,
    max_lines: int = DEFAULT_MAX_LINES,
    max_bytes: int = DEFAULT_MAX_BYTES,
    defaults: dict[str, Any] | None = None,
) -> list[BatchLine]:
    """Every line of a JSONL batch as a validated request, or :class:`BatchInvalid` naming every problem.

    ``defaults``: request fields a line gets when it sets none of its own (the CLI's provider
    options: ``model``, ``max_tokens_per_request``, ``context_length``, ...).
    """
    if len(data) > max_bytes:
        raise whole_batch_problem(f"the batch is {len(data)} bytes; the limit is {max_bytes}")
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[0].startswith(b"\xef\xbb\xbf"):
        raw_lines[0] = raw_lines[0][3:]  # a UTF-8 byte order mark
    numbered = [(n, raw) for n, raw in enumerate(raw_lines, start=1) if raw.strip()]
    if not numbered:
        raise whole_batch_problem("the batch is empty: give one JSON request per line")
    if len(numbered) > max_lines:
        raise whole_batch_problem(f"the batch has {len(numbered)} lines; the limit is {max_lines}")

    lines: list[BatchLine] = []
    problems: list[LineProblem] = []
    first_seen: dict[str, int] = {}
    for n, raw in numbered:
        try:
            line = parse_line(raw, n, defaults=defaults)
        except _LineInvalid as exc:
            problems.extend(exc.problems)
            continue
        earlier = first_seen.get(line.custom_id)
        if earlier is not None:
            problems.append(LineProblem(n, line.custom_id, "custom_id", f"duplicate of line {earlier}"))
            continue
        first_seen[line.custom_id] = n
        lines.append(line)
    if problems:
        raise BatchInvalid(
            problems[:MAX_PROBLEMS_LISTED], not_listed=max(0, len(problems) - MAX_PROBLEMS_LISTED)
        )
    return lines


class _LineInvalid(Exception):
    def __init__(self, problems: list[LineProblem]):
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))


def parse_line(raw: bytes, n: int, *, defaults: dict[str, Any] | None = None) -> BatchLine:
    """One line (``n`` is its number): the OpenAI Batch shape or a plain prompt."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _LineInvalid([LineProblem(n, None, "(line)", f"not UTF-8 text: {exc}")]) from exc
    try:
        data = json.loads(text)
    except RecursionError as exc:
        raise _LineInvalid([LineProblem(n, None, "(line)", "nested too deeply to be a request")]) from exc
    except ValueError as exc:  # JSONDecodeError, or an integer past the digit limit
        raise _LineInvalid([LineProblem(n, None, "(line)", f"not valid JSON: {str(exc)[:200]}")]) from exc
    if not isinstance(data, dict):
        raise _LineInvalid(
            [LineProblem(n, None, "(line)", f"expected a JSON object, got {type(data).__name__}")]
        )

    openai_shape = bool(set(data) & {"body", "method", "url"})
    problems: list[LineProblem] = []
    custom_id = data.get("custom_id")
    shown_id = custom_id if isinstance(custom_id, str) and is_text(custom_id) else None
    if custom_id is None and not openai_shape:
        custom_id = f"line-{n}"
    elif not isinstance(custom_id, str) or not custom_id.strip():
        problems.append(LineProblem(n, None, "custom_id", "required: a non-empty string"))
    elif not is_text(custom_id):
        problems.append(LineProblem(n, None, "custom_id", NOT_TEXT))
    elif len(custom_id) > CUSTOM_ID_MAX:
        problems.append(LineProblem(n, None, "custom_id", f"longer than {CUSTOM_ID_MAX} characters"))

    if openai_shape:
        # the line's own fields that are not text (the body's are parse_request's to name)
        outside = {k: v for k, v in data.items() if k not in ("custom_id", "body")}
        problems.extend(LineProblem(n, shown_id, p.field, p.message) for p in text_problems(outside))
        data = {k: v for k, v in data.items() if is_text(k)}
        prefix = "body."
        for key in sorted(set(data) - OPENAI_KEYS):
            problems.append(
                LineProblem(
                    n, shown_id, key, "unknown field (an OpenAI Batch line has custom_id, method, url, body)"
                )
            )
        method = data.get("method", "POST")
        if method != "POST":
            problems.append(LineProblem(n, shown_id, "method", f"must be POST, got {method!r}"))
        url = data.get("url", "/v1/chat/completions")
        if url not in CHAT_URLS:
            problems.append(LineProblem(n, shown_id, "url", f"must be /v1/chat/completions, got {url!r}"))
        body = data.get("body")
        if not isinstance(body, dict):
            problems.append(
                LineProblem(n, shown_id, "body", "required: a chat completion request (a JSON object)")
            )
            raise _LineInvalid(problems)
        fields, mapped = _from_chat_body(body)
        problems.extend(LineProblem(n, shown_id, f"body.{f}", m) for f, m in mapped)
    else:
        prefix = ""
        fields = {k: v for k, v in data.items() if k != "custom_id"}

    for key, value in (defaults or {}).items():
        if fields.get(key) is None and value is not None:
            fields[key] = value
    try:
        request = parse_request(fields)
    except RequestInvalid as exc:
        problems.extend(LineProblem(n, shown_id, _prefixed(prefix, p.field), p.message) for p in exc.problems)
        raise _LineInvalid(problems) from exc
    if problems:
        raise _LineInvalid(problems)
    assert isinstance(custom_id, str)
    return BatchLine(line=n, custom_id=custom_id, request=request)


def _prefixed(prefix: str, field: str) -> str:
    if field == "(body)":
        return prefix.rstrip(".") or "(line)"
    return prefix + field


def _from_chat_body(body: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A chat completion body in longform's request terms, and the problems of the mapping."""
    fields = dict(body)
    problems: list[tuple[str, str]] = []
    budgets = [k for k in ("max_tokens", "max_completion_tokens") if fields.get(k) is not None]
    for key in ("max_tokens", "max_completion_tokens"):
        value = fields.pop(key, None)
        if value is None:
            continue
        if len(budgets) > 1 or fields.get("max_output_tokens") is not None:
            problems.append((key, "give one of max_tokens, max_completion_tokens, max_output_tokens"))
            continue
        fields["max_output_tokens"] = value
    messages = fields.get("messages")
    if isinstance(messages, list):
        fields["messages"] = [_text_message(m) for m in messages]
    return fields, problems


def _text_message(message: Any) -> Any:
    """A message whose content is a list of text parts, with the parts joined (anything else as is)."""
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        return message
    parts = message["content"]
    if all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in parts):
        return {**message, "content": "".join(p["text"] for p in parts)}
    return message
