"""The one definition of a job's statuses: what each means, and how a stopped job gets its status.

Anchored on OpenAI's Responses API (``completed`` / ``incomplete`` with ``incomplete_details.reason``
/ ``failed`` / ``cancelled``), which users already know::

    queued             accepted; no chunk attempt has started yet
    running            a chunk attempt has started (the chunk function marks it; a draft or a
                       commit implies it)
    succeeded          the model said it was done                                      exit 0
    context_exhausted  the context window is full                                      exit 0
    incomplete         longform's own rule stopped a job that was not finished:        exit 3
                       ``incomplete_reason`` max_output_tokens, max_chunks, max_cost
                       (its budgets), repetition, no_progress (its loop guards)
    failed             an error (provider, auth, an outage after retries); text kept   exit 1
    cancelled          cancelled on request; text kept, the chunk in flight included  exit 1

The manifest, ``result.json``, the API, the completion event, batch output lines and the CLI all
derive from this table. Pure, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

JobStatus = Literal[
    "queued", "running", "succeeded", "context_exhausted", "incomplete", "failed", "cancelled"
]
TerminalStatus = Literal["succeeded", "context_exhausted", "incomplete", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset(get_args(TerminalStatus))
# the statuses of a job that ended by itself and is complete as far as the model and its window go
NATURAL_ENDS: frozenset[str] = frozenset({"succeeded", "context_exhausted"})

# why longform stopped a job that was not finished (``incomplete``)
IncompleteReason = Literal["max_output_tokens", "max_chunks", "max_cost", "repetition", "no_progress"]
INCOMPLETE_REASONS: frozenset[str] = frozenset(get_args(IncompleteReason))

# exit codes of the CLI, the same for every command
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@dataclass(frozen=True)
class StatusMeaning:
    """What one status says, and how each surface shows it."""

    meaning: str  # one line, for the README, the CLI and the API's description
    exit_code: int | None  # the CLI's exit code for a job that ended so (None: not ended)
    # the OpenAI chat.completion finish_reason of a batch line's body (None: the model's own finish)
    openai_finish: str | None
    batch_status_code: int | None  # the batch line's response.status_code (None: not ended)


STATUSES: dict[str, StatusMeaning] = {
    "queued": StatusMeaning("accepted; no chunk has started yet", None, None, None),
    "running": StatusMeaning("generating: a chunk has started", None, None, None),
    "succeeded": StatusMeaning("the model said it was done", EXIT_OK, None, 200),
    "context_exhausted": StatusMeaning("the context window is full", EXIT_OK, "length", 200),
    "incomplete": StatusMeaning(
        "longform stopped a job that was not finished (incomplete_reason: a budget or a loop guard)",
        EXIT_INCOMPLETE,
        "length",
        200,
    ),
    "failed": StatusMeaning("an error stopped the job; the text so far is kept", EXIT_FAILED, "length", 500),
    "cancelled": StatusMeaning(
        "cancelled on request; the text so far is kept, the chunk in flight included",
        EXIT_FAILED,
        "length",
        499,
    ),
}


def is_terminal(status: str) -> bool:
    return status in TERMINAL_STATUSES


def exit_code(status: str) -> int:
    """The CLI's exit code for a job in ``status`` (a job that has not ended: failed to finish)."""
    meaning = STATUSES.get(status)
    if meaning is None or meaning.exit_code is None:
        return EXIT_FAILED
    return meaning.exit_code


def incomplete_reason(stop_reason: str | None) -> IncompleteReason | None:
    """The ``incomplete_reason`` of a job that stopped for ``stop_reason`` (None: not incomplete).

    A reasoning model that only thinks, chunk after chunk, makes no progress on its answer: it is
    stopped by the no-progress guard (its ``stop_reason`` stays ``reasoning_loop``)."""
    if stop_reason == "reasoning_loop":
        return "no_progress"
    if stop_reason in INCOMPLETE_REASONS:
        return stop_reason  # type: ignore[return-value]
    return None
