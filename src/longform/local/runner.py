"""``longform run`` and ``longform resume``: one job end to end through the real state machine,
on a laptop, with the answer shown as it is generated and the job kept on disk.

The job runs in the local cloud (``cloud.py``: moto, the very ASL, the handlers in-process); its
bucket lives in the state directory (``state.py``), so a job interrupted by Ctrl-C (or a crash)
is resumed by ``longform resume ID`` from its last commit or draft. While it runs, ``follow``
polls the job's manifest and the draft of the chunk in flight and hands them to the UI
(``terminal.py``); Ctrl-C stops following at once, writes what is committed (and the draft) to
``--out`` and raises ``Interrupted``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError
from longform_core.request import DEFAULT_MAX_TOKENS_PER_REQUEST

from longform.live import LiveText

from .aws import TERMINAL_EXECUTION, quiet_moto_logs
from .cloud import BUCKET, LOCAL_OWNER, CloudConfig, LocalCloud
from .providers import Provider, ProviderOptions, choose_provider
from .run_record import RunRecord
from .state import StateDir, StateDirBusy, default_state_dir
from .terminal import JobProgress, Mode, print_table

BUDGET_STOPS = {"max_output_tokens", "max_chunks", "max_cost"}
STDOUT = Path("-")
# local draft checkpoints: often, for the live view (the local bucket is a directory, not S3)
LOCAL_DRAFT_INTERVAL_SECONDS = 0.25
LOCAL_DRAFT_MIN_TOKENS = 8


@dataclass
class RunOptions:
    request: dict[str, Any]
    provider: ProviderOptions = field(default_factory=ProviderOptions)
    max_tokens_per_request: int | None = None
    context_length: int | None = None
    out: Path | None = None  # None: out/<job id>.md; Path("-"): the answer to stdout
    chunk_timeout: float | None = None
    deadline_margin: float = 30.0
    retry_sleep_scale: float = 1.0
    verbose: bool = False
    state_dir: Path | None = None  # None: in memory only (nothing to resume)
    mode: Mode = "lines"
    poll_seconds: float = 0.1
    stream: bool | None = None  # ask the provider with streaming (None: the deployment default)
    # Ctrl-C: the CLI's SIGINT handler sets ``stop``; ``on_interrupt`` gets the summary of what was
    # kept while the local cloud still runs (the CLI prints it and exits: waiting for the
    # executions would run the job on). Without it, ``Interrupted`` is raised.
    stop: threading.Event = field(default_factory=threading.Event)
    on_interrupt: Callable[[RunSummary], None] | None = None


@dataclass
class RunSummary:
    job_id: str
    status: str  # the job's status, or "interrupted"
    finish_reason: str | None
    stop_reason: str | None
    chunks: int
    prompt_tokens: int | None
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


class JobNotResumable(Exception):
    """``longform resume`` of an id the state directory does not hold."""


# ---- the two entry points ----------------------------------------------------------------------


def run(options: RunOptions, *, on_cloud: Callable[[LocalCloud], None] | None = None) -> RunSummary:
    """Run a new job; raises ``RequestInvalid`` before anything starts, ``Interrupted`` on Ctrl-C."""
    from longform_core.request import parse_request

    request = parse_request(options.request)  # fail before starting anything
    started = time.monotonic()
    ui = JobProgress(options.mode, cap=_cap(options, request.max_tokens_per_request))
    with _provider(options) as provider, quiet_moto_logs():
        raw = request.model_dump(mode="json", exclude_none=True)
        raw["model"] = provider.model
        cap = _cap(options, request.max_tokens_per_request)
        for name in ("max_tokens_per_request", "context_length"):
            if getattr(options, name):
                raw[name] = getattr(options, name)
        ui.line(
            f"longform: {provider.label}, model {provider.model}, per-request cap {cap:,} tokens",
            style="bold",
        )
        ui.spin("starting the local stack (moto, the real state machine, the handlers in-process)")
        with LocalCloud(_cloud_config(options, provider, cap)) as cloud:
            if on_cloud is not None:
                on_cloud(cloud)
            job = cloud.submit(raw, owner=LOCAL_OWNER)
            if cloud.state is not None:
                cloud.state.save_run(job.job_id, _run_record(options, provider, cap))
            ui.line(f"job {job.job_id} started{_state_note(options)}")
            return follow(cloud, job.job_id, options, provider, ui, started=started)


def resume(job_id: str, options: RunOptions) -> RunSummary:
    """Continue a job of the state directory that did not end (or report the one that did)."""
    if options.state_dir is None:
        raise JobNotResumable("resume needs the state directory the job was started in")
    state = StateDir(options.state_dir)
    if job_id not in state.job_ids():
        raise JobNotResumable(f"no job {job_id} in {options.state_dir} (longform list shows its jobs)")
    holder = state.leases.holder(job_id)
    if holder is not None:
        raise StateDirBusy(
            f"job {job_id} is being run by {holder}; wait for it or stop it "
            f"(longform show {job_id} shows its progress)"
        )
    options = _with_recorded_provider(options, state.load_run(job_id))
    started = time.monotonic()
    cap = _cap(options, None)
    ui = JobProgress(options.mode, cap=cap)
    ui.spin("starting the local stack")
    with (
        _provider(options) as provider,
        quiet_moto_logs(),
        LocalCloud(_cloud_config(options, provider, cap)) as cloud,
    ):
        manifest = cloud.store.find_manifest(job_id)
        if manifest is not None and not manifest.terminal:
            ui.line(
                f"longform: resuming job {job_id} ({manifest.chunks} chunks committed, "
                f"{manifest.completion_tokens_total:,} tokens) on {provider.label}, "
                f"model {provider.model}",
                style="bold",
            )
            cloud.resume(job_id)
        else:
            repaired = manifest is not None and rederive_outputs(cloud, job_id)
            note = "; its output files were missing or short: re-derived from the committed chunks"
            ui.line(f"longform: job {job_id} already ended" + (note if repaired else ""), style="bold")
        return follow(cloud, job_id, options, provider, ui, started=started)


def rederive_outputs(cloud: LocalCloud, job_id: str) -> bool:
    """An ended job whose ``output.md``/``reasoning.md``/``result.json`` are missing or shorter than
    the manifest says (a full disk, a crash after the commit) gets them written again from the
    committed chunks (Finalize's own derivation); whether anything had to be done."""
    from longform_core.finalize import FinalizeTaskInput, finalize_job
    from longform_core.job_store import JobKeys
    from longform_core.runtime import get_services

    store, keys = cloud.store, JobKeys(job_id)
    result = store.get_result(job_id)
    if result is not None:
        answer = store.get_text(result.output_key)
        reasoning = store.get_text(result.reasoning_key) if result.reasoning_key else ""
        if (answer is not None and len(answer) == result.output_chars) and (
            reasoning is not None and len(reasoning) == result.reasoning_chars
        ):
            return False
        cloud.s3.delete_object(Bucket=BUCKET, Key=keys.result)  # written last: its absence says "derive"
    finalize_job(FinalizeTaskInput(job_id=job_id), get_services())
    return True


# ---- following a job ---------------------------------------------------------------------------


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
        summary = _interrupted(cloud, job_id, options, provider, started, answer_start)
        if options.on_interrupt is not None:
            options.on_interrupt(summary)
        raise Interrupted(summary) from None
    ui.close()
    return _finished(cloud, job_id, options, provider, started, desc)


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


def _write_answer(options: RunOptions, job_id: str, answer: str, reasoning: str | None) -> Path | None:
    out = options.out or Path("out") / f"{job_id}.md"
    if out == STDOUT:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(answer, encoding="utf-8")
    if reasoning:
        out.with_suffix(".reasoning.md").write_text(reasoning, encoding="utf-8")
    return out


def _finished(
    cloud: LocalCloud,
    job_id: str,
    options: RunOptions,
    provider: Provider,
    started: float,
    desc: dict[str, Any],
) -> RunSummary:
    store = cloud.store
    manifest = store.find_manifest(job_id)
    entered = cloud.states_entered(job_id) if desc["status"] != "NOT_STARTED" else []
    loop_transitions = sum(1 for name in entered if name in ("GenerateChunk", "MoreToGenerate"))
    output_path = result_path = None
    unwritten: str | None = None
    try:
        if manifest is not None and manifest.terminal:
            rederive_outputs(cloud, job_id)  # the job ended but its files did not all reach the disk
        result = store.get_result(job_id)
        answer = (store.get_text(result.output_key) or "") if result is not None else ""
        if result is not None and (answer or result.status != "failed"):  # a failed job: no empty --out
            reasoning = store.get_text(result.reasoning_key) if result.reasoning_key else None
            out = _write_answer(options, job_id, answer, reasoning)
            if out is not None:
                result_file = out.with_suffix(".json")
                result_file.write_text(result.model_dump_json(indent=2), encoding="utf-8")
                output_path, result_path = str(out), str(result_file)
            else:
                _stdout_answer(answer)
    except (OSError, ClientError, BotoCoreError) as exc:  # a full disk, a read-only --out
        result = store.get_result(job_id) if not isinstance(exc, OSError) else None
        unwritten = _where_the_text_is(cloud, job_id, exc)
    chunks = result.chunks if result else (manifest.chunks if manifest else 0)
    return RunSummary(
        job_id=job_id,
        status=result.status if result else (manifest.status if manifest else "failed"),
        finish_reason=result.finish_reason if result else None,
        stop_reason=result.stop_reason if result else None,
        chunks=chunks,
        prompt_tokens=result.prompt_tokens if result else None,
        output_tokens=result.output_tokens if result else 0,
        cached_tokens=result.cached_tokens if result else 0,
        estimated_cost_usd=result.estimated_cost_usd if result else None,
        state_transitions=len(entered),
        transitions_per_chunk=round(loop_transitions / chunks, 3) if chunks and entered else None,
        context_length=result.context_length if result else None,
        context_used=result.context_used if result else None,
        output_path=output_path,
        result_path=result_path,
        execution_status=str(desc["status"]),
        provider=provider.label,
        model=provider.model,
        duration_seconds=round(time.monotonic() - started, 3),
        max_invocation_seconds=round(max((i.duration_seconds for i in cloud.invocations), default=0.0), 3),
        error=unwritten or (result.error if result else desc.get("cause") or desc.get("error")),
        incomplete_reason=result.incomplete_reason if result else None,
        stop_detail=result.stop_detail if result else None,
        state_dir=str(options.state_dir) if options.state_dir else None,
        infrastructure_cost=(
            result.infrastructure_cost.model_dump() if result and result.infrastructure_cost else None
        ),
        output_written=unwritten is None
        and (result is not None or manifest is None or not manifest.terminal),
    )


def _where_the_text_is(cloud: LocalCloud, job_id: str, exc: BaseException) -> str:
    from longform_core.job_store import JobKeys

    chunks = JobKeys(job_id).chunk(0).rsplit("/", 1)[0]
    where = cloud.store_dir.object_path(chunks)
    message = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return (
        f"the output could not be written ({message}); the committed text is in {where}/, and "
        f"`longform resume {job_id}` writes it again once the disk takes it"
    )


def _interrupted(
    cloud: LocalCloud,
    job_id: str,
    options: RunOptions,
    provider: Provider,
    started: float,
    answer_start: str,
) -> RunSummary:
    """What Ctrl-C keeps: the committed text and the draft of the chunk in flight, in ``--out``."""
    store = cloud.store
    manifest = store.find_manifest(job_id)
    answer, reasoning, draft_tokens = "", "", 0
    if manifest is not None:
        answer, reasoning = store.read_running_text(manifest, answer_start=answer_start)
        draft = None if manifest.terminal else store.get_draft(job_id, manifest.chunks)
        if draft is not None:
            answer += draft.answer_text
            reasoning += draft.reasoning_text
            draft_tokens = draft.tokens
    error = None
    try:
        out = _write_answer(options, job_id, answer, reasoning or None)
    except OSError as exc:  # still stop: the text is in the state directory
        out, error = None, f"could not write --out: {exc}"
    else:
        if out is None:
            _stdout_answer(answer)
    resumable = options.state_dir is not None and manifest is not None and not manifest.terminal
    command = None
    if resumable:
        command = f"longform resume {job_id}"
        if options.state_dir != default_state_dir():
            command += f" --state-dir {options.state_dir}"
    return RunSummary(
        job_id=job_id,
        status="interrupted",
        finish_reason=None,
        stop_reason=None,
        chunks=manifest.chunks if manifest else 0,
        prompt_tokens=manifest.first_prompt_tokens if manifest else None,
        output_tokens=manifest.completion_tokens_total if manifest else 0,
        cached_tokens=manifest.cached_tokens_total if manifest else 0,
        estimated_cost_usd=manifest.estimated_cost_usd if manifest else None,
        state_transitions=0,
        transitions_per_chunk=None,
        context_length=manifest.context_length if manifest else None,
        context_used=None,
        output_path=str(out) if out else None,
        result_path=None,
        execution_status="RUNNING",
        provider=provider.label,
        model=provider.model,
        duration_seconds=round(time.monotonic() - started, 3),
        max_invocation_seconds=0.0,
        error=error,
        draft_tokens=draft_tokens,
        resume_command=command,
        state_dir=str(options.state_dir) if options.state_dir else None,
    )


def _stdout_answer(answer: str) -> None:
    import sys

    sys.stdout.write(answer)
    if answer and not answer.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()


# ---- configuration -----------------------------------------------------------------------------


def _cap(options: RunOptions, requested: int | None) -> int:
    return options.max_tokens_per_request or requested or DEFAULT_MAX_TOKENS_PER_REQUEST


@contextlib.contextmanager
def _provider(options: RunOptions) -> Iterator[Provider]:
    model = options.provider.model or options.request.get("model")
    choice = replace(
        options.provider,
        model=model if isinstance(model, str) else None,
        max_tokens_per_request=options.max_tokens_per_request,
        context_length=options.context_length,
    )
    with choose_provider(choice) as provider:
        yield provider


def _cloud_config(options: RunOptions, provider: Provider, cap: int) -> CloudConfig:
    return CloudConfig.for_provider(
        provider,
        max_tokens_per_request=cap,
        deadline_margin_seconds=options.deadline_margin,
        retry_sleep_scale=options.retry_sleep_scale,
        provider_stream=options.stream,
        draft_interval_seconds=LOCAL_DRAFT_INTERVAL_SECONDS,
        draft_min_tokens=LOCAL_DRAFT_MIN_TOKENS,
        log_level="INFO" if options.verbose else "WARNING",
        timeouts={"GenerateChunkFunction": options.chunk_timeout} if options.chunk_timeout else {},
        state_dir=options.state_dir,
    )


def _run_record(options: RunOptions, provider: Provider, cap: int) -> RunRecord:
    """How the job was started (``runs/<id>.json``): what ``resume`` needs; never the API key."""
    return RunRecord.started(
        provider,
        options.provider,
        max_tokens_per_request=cap,
        context_length=options.context_length,
        chunk_timeout=options.chunk_timeout,
        deadline_margin=options.deadline_margin,
        stream=options.stream,
    )


def _with_recorded_provider(options: RunOptions, record: RunRecord | None) -> RunOptions:
    """Provider options the user did not give on ``resume`` come from how the job was started."""
    if record is None:
        return options
    merged = replace(options, provider=record.provider_options(options.provider))
    for name in ("context_length", "chunk_timeout", "max_tokens_per_request", "stream"):
        if getattr(merged, name) is None:
            setattr(merged, name, getattr(record, name))
    return merged


def _state_note(options: RunOptions) -> str:
    return f" (kept in {options.state_dir})" if options.state_dir else ""


# ---- the summary -------------------------------------------------------------------------------


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


def print_summary(summary: RunSummary, stream: TextIO) -> None:
    from longform_core.infra_cost import InfraCost, summary_line

    rows = [("status", f"{describe_status(summary)}  (job {summary.job_id})")]
    if (
        summary.stop_reason and summary.stop_reason != summary.finish_reason
    ):  # "stop (stop: stop)" says nothing
        rows.append(("finish", f"{summary.finish_reason or '-'} (stop: {summary.stop_reason})"))
    tokens = f"output {summary.output_tokens:,}"
    if summary.prompt_tokens is not None:
        tokens = f"prompt {summary.prompt_tokens:,}, " + tokens
    tokens += f", cached {summary.cached_tokens:,}"
    if summary.draft_tokens:
        tokens += f" (+ {summary.draft_tokens:,} of the chunk in flight, from its draft)"
    rows += [("chunks", str(summary.chunks)), ("tokens", tokens)]
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
    if summary.estimated_cost_usd is not None:
        illustration = (
            " (the emulator's illustrative price: nothing is billed)"
            if "emulator" in summary.provider
            else ""
        )
        rows.append(("estimated cost", f"${summary.estimated_cost_usd:.6f}{illustration}"))
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
