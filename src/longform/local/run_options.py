"""How a local job runs (``RunOptions``), and how it was started (``runs/<id>.json``, the run record):
the provider, the local cloud's configuration, the output file. ``longform resume`` takes every
option it is not given from the run record, so a job continues as it was started.

``RunOptions`` is a ``RunSettings`` (``run_record.py``): the settings a record keeps are declared
there once, and the record is built from the options' own (``run_record``)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from longform_core.request import DEFAULT_MAX_TOKENS_PER_REQUEST
from pydantic import ConfigDict, Field

from .cloud import CloudConfig
from .providers import Provider, ProviderOptions, choose_provider
from .run_record import RunRecord, RunSettings
from .summary import RunSummary
from .terminal import Mode

STDOUT = Path("-")
# local draft checkpoints: often, for the live view (the local bucket is a directory, not S3)
LOCAL_DRAFT_INTERVAL_SECONDS = 0.25
LOCAL_DRAFT_MIN_TOKENS = 8


class RunOptions(RunSettings):
    """What a local run was asked (``longform run``/``resume``): the recorded settings (None: not
    given), the request, the provider, and this process's own (output, display, Ctrl-C)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    request: dict[str, Any]
    provider: ProviderOptions = Field(default_factory=ProviderOptions)
    out: Path | None = None  # None: out/<job id>.md; Path("-"): the answer to stdout
    retry_sleep_scale: float = 1.0
    verbose: bool = False
    state_dir: Path | None = None  # None: in memory only (nothing to resume)
    mode: Mode = "lines"
    poll_seconds: float = 0.1
    # Ctrl-C: the CLI's SIGINT handler sets ``stop``; ``on_interrupt`` gets the summary of what was
    # kept while the local cloud still runs (the CLI prints it and exits: waiting for the
    # executions would run the job on). Without it, ``Interrupted`` is raised.
    stop: threading.Event = Field(default_factory=threading.Event)
    on_interrupt: Callable[[RunSummary], None] | None = None
    # ``resume`` of an ``incomplete`` job stopped by a budget: its new budgets (reopen.py)
    max_chunks: int | None = None
    max_output_tokens: int | None = None
    max_cost_usd: float | None = None


def out_path(options: RunOptions, job_id: str) -> Path:
    """Where the answer goes: ``--out``, else ``out/<job id>.md`` (``STDOUT``: standard output)."""
    return options.out or Path("out") / f"{job_id}.md"


def cap_for(options: RunOptions, requested: int | None) -> int:
    return options.max_tokens_per_request or requested or DEFAULT_MAX_TOKENS_PER_REQUEST


@contextlib.contextmanager
def provider_for(options: RunOptions) -> Iterator[Provider]:
    model = options.provider.model or options.request.get("model")
    choice = replace(
        options.provider,
        model=model if isinstance(model, str) else None,
        max_tokens_per_request=options.max_tokens_per_request,
        context_length=options.context_length,
    )
    with choose_provider(choice) as provider:
        yield provider


def cloud_config(options: RunOptions, provider: Provider, cap: int) -> CloudConfig:
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


def run_record(options: RunOptions, provider: Provider, cap: int, job_id: str) -> RunRecord:
    """How the job was started (``runs/<id>.json``): what ``resume`` needs; never the API key.
    ``out`` is absolute (``resume`` may run in another directory); None when the answer went to
    standard output (``resume`` then follows its own default)."""
    out = out_path(options, job_id)
    settings = {name: getattr(options, name) for name in RunSettings.model_fields}
    settings["max_tokens_per_request"] = cap
    return RunRecord.started(
        provider, options.provider, **settings, out=None if out == STDOUT else str(out.resolve())
    )


def with_recorded_options(options: RunOptions, record: RunRecord | None) -> RunOptions:
    """Options the user did not give on ``resume`` come from how the job was started, the answer
    going on into the file it was started with."""
    if record is None:
        return options
    update = options.given_or_recorded(record)
    update["provider"] = record.provider_options(options.provider)
    update["out"] = options.out or recorded_out(record)
    return options.model_copy(update=update)


def recorded_out(record: RunRecord | None) -> Path | None:
    """The ``--out`` file a job was started with (None: stdout, or not recorded)."""
    return Path(record.out) if record is not None and record.out else None
