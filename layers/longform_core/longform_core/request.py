"""The public request format, shared by the CLI, the HTTP API and the S3 drop folder.

``parse_request`` turns untrusted input into a :class:`GenerationRequest` or raises
:class:`~longform_core.errors.RequestInvalid` naming *every* problem field at once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from .errors import Problem, RequestInvalid
from .provider_params import check_provider_params

DEFAULT_MAX_TOKENS_PER_REQUEST = 16_384
DEFAULT_MAX_CHUNKS = 200
# A Standard execution holds 25,000 history events. A chunk costs 7 (the Lambda task 5, the Choice
# 2), a Retry of the chunk task about 5 more, plus 11 fixed: 2,000 chunks (14,000 events) leave
# room for some 2,000 retries. Past this a job does not fit one execution (the sweeper would end it
# `failed` with its output kept, but it is refused up front instead).
MAX_CHUNKS_PER_JOB = 2_000
MAX_PROMPT_CHARS = 4_000_000

Role = Literal["system", "developer", "user", "assistant"]
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high"]
# how the answer so far is given back to the model (prefill.py): "auto" learns it per (base URL,
# model); the others are the ladder's rungs, used as they are
PrefillStyle = Literal["auto", "assistant", "vllm", "prefix", "completion", "continue_message"]


class Message(BaseModel):
    """One chat message. ``content`` is plain text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str = Field(max_length=MAX_PROMPT_CHARS)

    def to_wire(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


class GenerationRequest(BaseModel):
    """A long generation job. Field names are the public request format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(default=None, min_length=1, max_length=256)
    messages: list[Message] | None = Field(default=None, max_length=10_000)
    prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    stop: list[str] | None = Field(default=None, max_length=16)
    reasoning_effort: ReasoningEffort | None = None

    max_output_tokens: int | None = Field(default=None, ge=1, le=10_000_000)
    max_chunks: int = Field(default=DEFAULT_MAX_CHUNKS, ge=1, le=MAX_CHUNKS_PER_JOB)
    max_cost_usd: float | None = Field(default=None, gt=0.0, le=100_000.0)
    max_tokens_per_request: int | None = Field(default=None, ge=1, le=1_000_000)
    context_length: int | None = Field(default=None, ge=16, le=100_000_000)
    # stream the provider's replies (None: the deployment's default); some gateways buffer SSE
    stream: bool | None = None
    # how to continue (None: the deployment's PrefillStyle, "auto" by default); see prefill.py
    prefill_style: PrefillStyle | None = None
    # the model's Jinja chat template, for the raw-completion rung (None: the deployment's, the
    # server's own from GET /props, or a well-known family by model name); see chat_template.py
    chat_template: str | None = Field(default=None, min_length=1, max_length=100_000)
    # the repetition guard (None: on): a model stuck repeating itself ends the job `incomplete`
    # (`repetition`); false lets it run on until the context is full (the naive semantics)
    stop_on_repetition: bool | None = None
    # fields sent to the provider as they are in every request (a server's own sampling settings,
    # e.g. llama.cpp's `repeat_penalty`); see provider_params.py
    provider_params: dict[str, JsonValue] | None = None

    @field_validator("provider_params")
    @classmethod
    def _provider_params(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_provider_params(value)

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value]
        return value

    @field_validator("stop")
    @classmethod
    def _stop_not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(s == "" for s in value):
            raise ValueError("stop sequences must not be empty strings")
        if value is not None and any(not is_text(s) for s in value):
            raise ValueError(NOT_TEXT)
        return value

    # ---- derived views --------------------------------------------------------------------------

    def conversation(self) -> list[Message]:
        """The messages sent to the model, without the user's own start of the answer."""
        msgs = self.all_messages()
        if msgs and msgs[-1].role == "assistant":
            return msgs[:-1]
        return msgs

    def answer_start(self) -> str:
        """Text the user wrote as the start of the answer (a trailing assistant message), or ''."""
        msgs = self.all_messages()
        if msgs and msgs[-1].role == "assistant":
            return msgs[-1].content
        return ""

    def all_messages(self) -> list[Message]:
        if self.messages is not None:
            return list(self.messages)
        return [Message(role="user", content=self.prompt or "")]

    def fingerprint(self) -> str:
        """A stable hash of the request body, for idempotency checks."""
        canonical = json.dumps(self.model_dump(mode="json", exclude_none=True), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


NOT_TEXT = (
    "not valid text: it holds a lone UTF-16 surrogate (send UTF-8 text; escape pairs in JSON as a pair)"
)


def is_text(value: str) -> bool:
    """Can ``value`` be stored and sent as UTF-8? (A lone surrogate such as ``"\\ud800"``, which JSON
    can spell and Python decodes, cannot: every write of it would fail.)"""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(value: str) -> str:
    """``value`` safe to put in an error body: a lone surrogate spelled as its escape."""
    return value if is_text(value) else value.encode("utf-8", "backslashreplace").decode("utf-8")


def text_problems(data: Any, field: str = "") -> list[Problem]:
    """Every string (value or key) in ``data`` that is not encodable text, named by its path."""
    problems: list[Problem] = []
    stack: list[tuple[Any, str]] = [(data, field)]
    while stack:  # iterative: a hostile body may be nested deeper than the recursion limit
        value, path = stack.pop()
        if isinstance(value, str):
            if not is_text(value):
                problems.append(Problem(path or "(body)", NOT_TEXT))
        elif isinstance(value, dict):
            for key, item in value.items():
                name = shown(str(key))
                if isinstance(key, str) and not is_text(key):
                    problems.append(Problem(f"{path}.{name}" if path else name, f"field name {NOT_TEXT}"))
                stack.append((item, f"{path}.{name}" if path else name))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(value))
    return sorted(problems, key=lambda p: p.field)


def _loc_to_field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = shown(str(part))
            out += f".{name}" if out else name
    return out or "(body)"


def _pydantic_problems(exc: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        field = _loc_to_field(tuple(err["loc"]))
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "literal_error" and field.endswith(".role"):
            message = f"unknown role {err.get('input')!r}; expected one of system, developer, user, assistant"
        problems.append(Problem(field=field, message=message))
    return problems


def _cross_field_problems(data: dict[str, Any]) -> list[Problem]:
    """Checks that span fields; they run on the raw input so they report alongside field errors."""
    problems: list[Problem] = []
    has_messages = data.get("messages") is not None
    has_prompt = data.get("prompt") is not None
    if has_messages and has_prompt:
        problems.append(Problem("prompt", "give either prompt or messages, not both"))
    if not has_messages and not has_prompt:
        problems.append(Problem("messages", "required: give messages (a non-empty list) or prompt"))
    prompt = data.get("prompt")
    if isinstance(prompt, str) and not prompt.strip():
        problems.append(Problem("prompt", "must not be empty"))
    messages = data.get("messages")
    if isinstance(messages, list):
        if not messages:
            problems.append(Problem("messages", "must not be empty"))
        roles = [m.get("role") for m in messages if isinstance(m, dict)]
        dicts = [m for m in messages if isinstance(m, dict)]
        for i, m in enumerate(messages):
            if isinstance(m, dict):
                content = m.get("content")
                is_last = i == len(messages) - 1
                if (
                    isinstance(content, str)
                    and not content.strip()
                    and not (is_last and m.get("role") == "assistant")
                ):
                    problems.append(Problem(f"messages[{i}].content", "must not be empty"))
        if dicts and len(dicts) == len(messages):
            if not any(r == "user" for r in roles):
                problems.append(Problem("messages", "needs at least one user message"))
            if roles and roles[-1] == "assistant" and len(roles) == 1:
                problems.append(Problem("messages", "an assistant start needs a user message before it"))
    cap = data.get("max_tokens_per_request")
    context = data.get("context_length")
    if isinstance(cap, int) and isinstance(context, int) and cap >= context:
        problems.append(Problem("max_tokens_per_request", f"must be smaller than context_length ({context})"))
    return problems


def parse_request(data: Any) -> GenerationRequest:
    """Validate untrusted input. Raises :class:`RequestInvalid` listing every problem.

    Hostile input is a bad request too, never a crash: JSON nested too deeply for the parser
    (``RecursionError``) or holding an integer too long to convert (``ValueError`` past Python's
    4,300-digit limit) is answered with the problem named.
    """
    try:
        return _parse_request(data)
    except RecursionError as exc:
        raise RequestInvalid([Problem("(body)", "nested too deeply to be a request")]) from exc


def _parse_request(data: Any) -> GenerationRequest:
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except UnicodeDecodeError as exc:
            raise RequestInvalid([Problem("(body)", f"not valid JSON: {exc}")]) from exc
        except ValueError as exc:  # JSONDecodeError, or an integer past the digit limit
            message = str(exc)[:200]
            raise RequestInvalid([Problem("(body)", f"not valid JSON: {message}")]) from exc
    if not isinstance(data, dict):
        raise RequestInvalid([Problem("(body)", f"expected a JSON object, got {type(data).__name__}")])
    not_text = text_problems(data)
    problems = not_text + _cross_field_problems(data)
    named = {p.field for p in not_text}
    try:
        request = GenerationRequest.model_validate(data)
    except ValidationError as exc:
        # a field that is not text is named once, in words that say why
        problems = [p for p in _pydantic_problems(exc) if not _said(p, named)] + problems
        request = None
    if problems:
        raise RequestInvalid(_dedupe(problems))
    assert request is not None
    return request


def _said(problem: Problem, named: set[str]) -> bool:
    """Pydantic's own words for a string that is not text (already named, with the reason)."""
    return problem.message.endswith(NOT_TEXT) or "unicode string" in problem.message or problem.field in named


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str]] = set()
    out: list[Problem] = []
    for p in problems:
        key = (p.field, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
