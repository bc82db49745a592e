"""The summary of a local job (``longform run`` / ``resume``): what it did, what it cost, where its
text is; printed as a table after the answer, or as one JSON line with ``--json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .cloud import BUCKET
from .terminal import print_table

BUDGET_STOPS = {"max_output_tokens", "max_chunks", "max_cost"}


@dataclass
class RunSummary:
    job_id: str
    status: str  # the job's status, or "interrupted"
    finish_reason: str | None
    stop_reason: str | None
    chunks: int
    prompt_tokens: int | None  # of the job's first request
    output_tokens: int
    cached_tokens: int
    estimated_cost_usd: float | None
    state_transitions: int
    transitions_per_chunk: float | None  # GenerateChunk + MoreToGenerate entries per chunk
    context_length: int | None
    context_used: float | None
    output_path: str | None
    result_path: str | None
    execution_status: str
    provider: str
    model: str
    duration_seconds: float
    max_invocation_seconds: float
    error: str | None = None
    incomplete_reason: str | None = None  # status "incomplete": which rule stopped it (job_status.py)
    stop_detail: str | None = None
    draft_tokens: int = 0  # interrupted: tokens of the chunk in flight kept from its draft
    resume_command: str | None = None
    state_dir: str | None = None
    # the AWS bill the job would have run up deployed (infra_cost.py), beside its tokens
    infrastructure_cost: dict[str, Any] | None = None
    output_written: bool = True  # False: the job's text could not be written (error says where it is)
    # what is billed: the prompt tokens of every chunk's request summed (each carries the text so
    # far), and whether the provider is the emulator (its estimated cost is an illustration)
    prompt_tokens_total: int | None = None  # of the chunks' kept requests (result.json's)
    emulated: bool = False
    # everything billed (billing.py): requests, prompt/cached/output tokens, cost; beyond the chunks'
    # kept requests, those of this process that were not kept (the style probe, discarded replies)
    billed: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def cut_by_budget(self) -> bool:
        return self.status == "incomplete" and self.stop_reason in BUDGET_STOPS

    @property
    def exit_code(self) -> int:
        """0 done, 3 incomplete (the text is not finished), 1 failed or cancelled or the output not
        written, 130 interrupted."""
        from longform_core.job_status import EXIT_INTERRUPTED, exit_code

        if self.status == "interrupted":
            return EXIT_INTERRUPTED
        return 1 if not self.output_written else exit_code(self.status)


class Interrupted(Exception):
    """Ctrl-C: the summary of what was kept (``--out`` written)."""

    def __init__(self, summary: RunSummary):
        super().__init__(f"job {summary.job_id} interrupted")
        self.summary = summary


# ---- printing -----


def describe_status(summary: RunSummary) -> str:
    if summary.status == "interrupted":
        return "interrupted (nothing half-done was committed)"
    if not summary.output_written:
        return f"{summary.status}, but its output was not written (see error)"
    if summary.cut_by_budget:
        return f"incomplete: the {summary.stop_reason} budget was reached, the text is not finished"
    if summary.status == "incomplete":
        detail = summary.stop_detail or "the text is not finished"
        return f"incomplete ({summary.incomplete_reason}): {detail}"
    if summary.status == "context_exhausted":
        return "done: the context window is full"
    if summary.status == "succeeded":
        return "done"
    return summary.status


def billed_tokens(summary: RunSummary) -> str:
    """The tokens a provider bills: prompt tokens over every request (each chunk's prompt holds the
    answer so far, so they grow with the job; the style probe and discarded replies are billed too),
    the cached part of them, and the output (beside what the answer kept)."""
    billed = summary.billed or {}
    requests = int(billed.get("requests") or summary.chunks)
    prompt = int(billed.get("prompt_tokens") or summary.prompt_tokens_total or 0)
    output = int(billed.get("output_tokens") or summary.output_tokens)
    parts = []
    if prompt:
        head = f"prompt {prompt:,} over {requests:,} request{'s' if requests != 1 else ''}"
        unkept = requests - summary.chunks
        if unkept > 0:
            head += f" ({unkept} not kept as a chunk: the style probe, a discarded reply)"
        if summary.prompt_tokens and requests > 1:
            head += f"; the first {summary.prompt_tokens:,}"
        parts.append(head)
    elif summary.prompt_tokens is not None:
        parts.append(f"prompt {summary.prompt_tokens:,}")
    parts.append(f"cached {int(billed.get('cached_tokens') or summary.cached_tokens):,}")
    text = f"output {output:,}" + (
        f" ({summary.output_tokens:,} in the answer)" if output > summary.output_tokens else ""
    )
    if summary.draft_tokens:
        text += f" (+ {summary.draft_tokens:,} of the chunk in flight, from its draft)"
    parts.append(text)
    return ", ".join(parts)


def estimated_cost(summary: RunSummary) -> float | None:
    """The provider's estimated cost of every billed request (None: it reports none)."""
    if summary.estimated_cost_usd is None:
        return None
    return max(summary.estimated_cost_usd, float((summary.billed or {}).get("cost_usd") or 0.0))


def print_summary(summary: RunSummary, stream: TextIO) -> None:
    from longform_core.infra_cost import InfraCost, summary_line

    rows = [("status", f"{describe_status(summary)}  (job {summary.job_id})")]
    rows += [("chunks", str(summary.chunks)), ("tokens", billed_tokens(summary))]
    if summary.state_transitions:
        rows.append(
            (
                "state machine",
                f"{summary.state_transitions} state transitions"
                + (
                    f", {summary.transitions_per_chunk} per chunk in the loop"
                    if summary.transitions_per_chunk
                    else ""
                )
                + f"; execution {summary.execution_status}",
            )
        )
    cost = estimated_cost(summary)
    if cost is not None:
        illustration = " (the emulator's illustrative price: nothing is billed)" if summary.emulated else ""
        rows.append(("estimated cost", f"${cost:.6f}{illustration}"))
    if summary.infrastructure_cost is not None:
        rows.append(("AWS cost", summary_line(InfraCost.model_validate(summary.infrastructure_cost))))
    if summary.context_used is not None and summary.context_length:
        rows.append(
            (
                "context used",
                f"{summary.context_used:.2%} of the room after the prompt "
                f"(context {summary.context_length:,})",
            )
        )
    if summary.error:
        rows.append(("error", summary.error))
    longest = summary.max_invocation_seconds
    rows.append(
        (
            "time",
            f"{summary.duration_seconds:.1f}s"
            + (f" (longest chunk invocation {longest:.1f}s)" if longest >= 0.1 else ""),
        )
    )
    where = summary.output_path or "stdout"
    if summary.result_path:
        where += f"  (result: {summary.result_path})"
    rows.append(("output", where))
    reasoning = Path(summary.output_path).with_suffix(".reasoning.md") if summary.output_path else None
    if reasoning is not None and reasoning.is_file():
        rows.append(("reasoning", str(reasoning)))
    if summary.state_dir:
        rows.append(
            (
                "kept in",
                f"{summary.state_dir}  (local bucket {BUCKET}; longform list / show {summary.job_id})",
            )
        )
    if summary.resume_command:
        rows.append(("resume", summary.resume_command))
    elif summary.status == "interrupted":
        rows.append(("resume", "not possible: the job was kept in memory only (no --state-dir)"))
    stream.write("\n")
    print_table(rows, stream)


def summary_json(summary: RunSummary) -> str:
    return json.dumps(summary.to_json(), default=str)
