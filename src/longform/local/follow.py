"""Following a local job: the main thread polls the job's manifest and the draft of the chunk in
flight and hands the new text to the UI (``terminal.py``) until the execution ends; Ctrl-C
(``RunOptions.stop``) stops following at once, writes what is kept and raises ``Interrupted``."""

from __future__ import annotations

import contextlib
import json
import logging
import queue
from collections.abc import Iterator
from typing import Any

from longform.live import LiveText

from .aws import TERMINAL_EXECUTION
from .cloud import LocalCloud
from .outcome import finished, interrupted
from .providers import Provider
from .run_options import RunOptions
from .summary import Interrupted, RunSummary
from .terminal import JobProgress


class _Announcements(logging.Handler):
    """The provider client's retries (logged by the layer) as lines for the UI, via a queue so they
    are printed by the main thread between pieces of text."""

    def __init__(self, sink: queue.Queue[str]):
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.put(record.getMessage())


@contextlib.contextmanager
def _announced_retries(sink: queue.Queue[str]) -> Iterator[None]:
    layer = logging.getLogger("longform_core.provider")
    handler, propagate = _Announcements(sink), layer.propagate
    layer.addHandler(handler)
    layer.propagate = False
    try:
        yield
    finally:
        layer.removeHandler(handler)
        layer.propagate = propagate


def follow(
    cloud: LocalCloud,
    job_id: str,
    options: RunOptions,
    provider: Provider,
    ui: JobProgress,
    *,
    started: float,
) -> RunSummary:
    """Show the job until its execution ends; write ``--out``; its summary."""
    store = cloud.store
    request = store.get_request(job_id)
    answer_start = request.answer_start()
    arn = cloud.execution_arn(job_id)
    live = LiveText()
    chunks_seen, committed_text = 0, ""
    announcements: queue.Queue[str] = queue.Queue()
    failures_seen = len(cloud.invocations)
    permanent = never_retried(cloud)
    try:
        with _announced_retries(announcements):
            while True:
                try:
                    desc: dict[str, Any] = dict(cloud.sfn.describe_execution(executionArn=arn))
                except cloud.sfn.exceptions.ExecutionDoesNotExist:
                    desc = {"status": "NOT_STARTED"}  # a job that had already ended
                manifest = store.find_manifest(job_id)
                while not announcements.empty():
                    ui.announce(announcements.get())
                failures_seen = _announce_failures(cloud, ui, failures_seen, permanent)
                new_text = ""
                if manifest is not None and manifest.chunks > chunks_seen:
                    for index in range(chunks_seen, manifest.chunks):
                        chunk = store.get_chunk(job_id, index)
                        ui.chunk_done(
                            index,
                            chunk.completion_tokens,
                            chunk.finish_reason,
                            seconds=chunk.duration_ms / 1000,
                            from_draft=chunk.from_draft,
                        )
                    chunks_seen = manifest.chunks
                if manifest is not None and manifest.answer_chars > len(committed_text):
                    answer, _ = store.read_running_text(manifest, answer_start=answer_start)
                    new_text, committed_text = answer[len(committed_text) :], answer
                draft = None
                running = desc["status"] not in TERMINAL_EXECUTION and desc["status"] != "NOT_STARTED"
                if manifest is not None and running and not manifest.terminal:
                    draft = store.get_draft(job_id, manifest.chunks)
                    ui.in_chunk(manifest.chunks, draft.tokens if draft else 0)
                ui.text(live.update(new_text, draft.answer_text if draft else None))
                if not running:
                    break
                if options.stop.wait(options.poll_seconds):
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        ui.close()
        summary = interrupted(cloud, job_id, options, provider, started, answer_start)
        if options.on_interrupt is not None:
            options.on_interrupt(summary)
        raise Interrupted(summary) from None
    ui.close()
    return finished(cloud, job_id, options, provider, started, desc)


def never_retried(cloud: LocalCloud) -> frozenset[str]:
    """The errors the workflow's GenerateChunk never retries (its Retry rules with MaxAttempts 0)."""
    definition = json.loads((cloud.root / "statemachine" / "generation.asl.json").read_text(encoding="utf-8"))
    rules = definition["States"]["GenerateChunk"].get("Retry", [])
    return frozenset(e for rule in rules if rule.get("MaxAttempts") == 0 for e in rule["ErrorEquals"])


def _announce_failures(cloud: LocalCloud, ui: JobProgress, seen: int, permanent: frozenset[str]) -> int:
    invocations = cloud.invocations
    for inv in invocations[seen:]:
        if inv.function != "GenerateChunkFunction" or inv.error_type in (None, "ContextExhausted"):
            continue
        message = (inv.error_message or "").splitlines()[0][:140] if inv.error_message else ""
        then = "not retried: the job fails" if inv.error_type in permanent else "the state machine retries it"
        ui.announce(f"chunk attempt failed: {inv.error_type}: {message} ({then})")
    return len(invocations)
