"""The error taxonomy.

A Lambda function that raises reports ``errorType`` = the exception's class name, and that is
the name a Step Functions ``Retry``/``Catch`` matches. The names below are therefore part of the
workflow's contract (see ``statemachine/generation.asl.json``): rename one and the ASL must follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .sse import replace_lone_surrogates


class LongformError(Exception):
    """Base class of every error longform raises on purpose."""


# ---- job-level errors -------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: where (a dotted path) and what."""

    field: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class RequestInvalid(LongformError):
    """The request failed validation; ``problems`` names every problem field."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        summary = "; ".join(f"{p.field}: {p.message}" for p in problems)
        super().__init__(f"invalid request ({len(problems)} problem(s)): {summary}")

    def to_dict(self) -> dict[str, object]:
        return {
            "error": "RequestInvalid",
            "message": str(self),
            "problems": [p.to_dict() for p in self.problems],
        }


class IdempotencyConflict(LongformError):
    """The same idempotency key was used before with a different request body."""


class JobNotFound(LongformError):
    """No job with that id exists in the jobs bucket."""


class PageTokenInvalid(LongformError):
    """A listing's page token is malformed or no longer current."""


class JobStateInvalid(LongformError):
    """The stored job state is inconsistent and cannot be repaired automatically."""


class ManifestConflict(JobStateInvalid):
    """The manifest changed under this invocation: another attempt committed first, or a cancel.

    Unlike its parent it is worth retrying (the workflow's generic Retry does): the next attempt
    reads the new state, and goes on from it or finds the job ended.
    """


class ContextExhausted(LongformError):
    """Nothing more fits in the model's context window: the job ends ``context_exhausted``."""


# ---- batch errors -----------------------------------------------------------------------------
# (the batch workflow's Catch matches BatchNotFound and BatchInvalid by name: statemachine/batch.asl.json)


@dataclass(frozen=True)
class LineProblem:
    """One thing wrong with one line of a batch: its number (1-based), its custom_id, where, what."""

    line: int
    custom_id: str | None
    field: str
    message: str

    def to_problem(self) -> Problem:
        return Problem(f"line {self.line}: {self.field}", self.message)

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "custom_id": self.custom_id, "field": self.field, "message": self.message}


class BatchInvalid(RequestInvalid):
    """The batch failed validation; every bad line is named (``lines``), nothing was started."""

    def __init__(
        self, problems: list[LineProblem], *, not_listed: int = 0, whole: list[Problem] | None = None
    ):
        self.line_problems = problems
        self.not_listed = not_listed
        listed = [*(whole or []), *(p.to_problem() for p in problems)]
        if not_listed:
            listed.append(Problem("(batch)", f"{not_listed} more problem(s) not listed"))
        super().__init__(listed)

    def to_dict(self) -> dict[str, object]:
        body = super().to_dict()
        body["error"] = "BatchInvalid"
        body["lines"] = [p.to_dict() for p in self.line_problems]
        if self.not_listed:
            body["problems_not_listed"] = self.not_listed
        return body


class BatchNotFound(LongformError):
    """No batch with that id (or not the caller's)."""


class BatchConflict(JobStateInvalid):
    """``batch.json`` changed under this call (a cancel and the end of the batch racing)."""


# ---- provider errors --------------------------------------------------------------------------


# A provider may answer with any amount of text; what reaches the state machine (a task's error
# cause, capped at 256 KiB by Step Functions, and States.DataLimitExceeded matches no Catch) is kept
# to this many characters.
ERROR_TEXT_MAX = 4000


def bounded(text: str, limit: int = ERROR_TEXT_MAX) -> str:
    """``text`` cut to ``limit`` characters, and storable: a provider's message may carry a lone
    surrogate (a JSON ``\\ud800`` escape), which no UTF-8 writer accepts; it becomes U+FFFD."""
    text = replace_lone_surrogates(text)[0]
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


class ProviderError(LongformError):
    """An error answered by (or on the way to) the model provider."""

    retryable: bool = False

    def __init__(self, message: str, *, status: int | None = None):
        self.status = status
        super().__init__(bounded(message))


class ProviderRateLimited(ProviderError):
    """HTTP 429 (rate limited, or model busy). Retry after ``retry_after`` seconds when given."""

    retryable = True

    def __init__(self, message: str, *, status: int | None = 429, retry_after: float | None = None):
        super().__init__(message, status=status)
        self.retry_after = retry_after


class OutageCause(StrEnum):
    """Why the provider was unavailable, as the client saw it (said when the call is retried)."""

    UNREACHABLE = "unreachable"  # the connection failed (refused, reset, DNS) before any text
    TIMED_OUT = "timed_out"  # the client's own timeout (connect or read) before any text
    OUTAGE = "outage"  # a 5xx, a stream with no text, no time left: its message says which


class ProviderUnavailable(ProviderError):
    """5xx, connection failures, timeouts, a stream that broke before any text arrived."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        cause: OutageCause = OutageCause.OUTAGE,
    ):
        super().__init__(message, status=status)
        self.retry_after = retry_after
        self.cause = cause


class ProviderAuthenticationFailed(ProviderError):
    """HTTP 401/403: the API key is missing, wrong or not allowed to use the model."""


class ProviderRequestInvalid(ProviderError):
    """HTTP 4xx other than the context window: the request itself is wrong (unknown model, bad field)."""


@dataclass(frozen=True)
class ContextLimit:
    """The numbers of a context-window 400, parsed from the provider's message."""

    context_length: int
    prompt_tokens: int | None = None
    requested_completion: int | None = None

    @property
    def room(self) -> int | None:
        """Completion tokens that still fit, or None when the prompt size is unknown."""
        if self.prompt_tokens is None:
            return None
        return self.context_length - self.prompt_tokens


class ContextWindowExceeded(ProviderError):
    """HTTP 400 because prompt + max_tokens exceed the model's context window."""

    def __init__(self, message: str, *, limit: ContextLimit, status: int | None = 400):
        super().__init__(message, status=status)
        self.limit = limit


class PrefillRejected(ProviderRequestInvalid):
    """HTTP 400 because the server will not continue a final assistant message as sent.

    ``reason`` says what it objected to: ``"prefill"`` (no prefill at all, or not in this form:
    the ladder in ``prefill.py`` steps down to the next style) or ``"trailing_whitespace"`` (the
    same prefill without its trailing whitespace is accepted).
    """

    def __init__(self, message: str, *, reason: str = "prefill", status: int | None = 400):
        super().__init__(message, status=status)
        self.reason = reason
