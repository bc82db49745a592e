"""``longform run``: one job end to end through the real state machine, on a laptop."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from longform_core.config import DEEPINFRA_BASE_URL
from longform_core.config import DEFAULT_MODEL as DEEPINFRA_DEFAULT_MODEL

from .aws import quiet_moto_logs
from .cloud import BUCKET, CloudConfig, LocalCloud

EMULATOR_MODEL = "longform/emulated-writer"


@dataclass
class RunOptions:
    request: dict[str, Any]
    base_url: str | None = None
    api_key_env: str = "DEEPINFRA_API_KEY"
    max_tokens_per_request: int | None = None
    context_length: int | None = None
    out: Path | None = None
    chunk_timeout: float | None = None
    deadline_margin: float = 30.0
    retry_sleep_scale: float = 1.0
    emulator: dict[str, Any] = field(default_factory=dict)  # extra EmulatorSettings fields
    verbose: bool = False


@dataclass
class RunSummary:
    job_id: str
    status: str
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

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Provider:
    base_url: str
    api_key: str | None
    model: str
    label: str


@contextlib.contextmanager
def provider_for(options: RunOptions) -> Iterator[Provider]:
    """The emulator on a free loopback port unless --base-url is given or the API key is set."""
    key = os.environ.get(options.api_key_env) or None
    model = options.request.get("model")
    if options.base_url:
        yield Provider(options.base_url, key, model or DEEPINFRA_DEFAULT_MODEL, options.base_url)
        return
    if key:
        yield Provider(DEEPINFRA_BASE_URL, key, model or DEEPINFRA_DEFAULT_MODEL, "DeepInfra")
        return
    from longform.emulator.server import EmulatorServer, EmulatorSettings

    fields: dict[str, Any] = dict(options.emulator)
    if options.max_tokens_per_request:
        fields["cap"] = options.max_tokens_per_request
    if options.context_length:
        fields["context_length"] = options.context_length
    settings = EmulatorSettings().updated(**fields)
    with EmulatorServer(settings) as server:
        yield Provider(server.base_url, None, model or EMULATOR_MODEL, f"emulator at {server.base_url}")


def _bar(fraction: float, width: int = 24) -> str:
    filled = max(0, min(width, round(fraction * width)))
    return "#" * filled + "-" * (width - filled)


class Progress:
    """One line per committed chunk on stderr (chunk n, its tokens, the total, its finish reason)."""

    def __init__(self, stream: TextIO, cap: int, store: Any):
        self.stream = stream
        self.cap = cap
        self.store = store
        self.started = time.monotonic()
        self.shown = 0
        self.total = 0

    def __call__(self, manifest: Any) -> None:
        while self.shown < manifest.chunks:
            chunk = self.store.get_chunk(manifest.job_id, self.shown)
            self.shown += 1
            self.total += chunk.completion_tokens
            elapsed = time.monotonic() - self.started
            self.stream.write(
                f"  chunk {self.shown:>3} [{_bar(chunk.completion_tokens / max(1, self.cap))}] "
                f"{chunk.completion_tokens:>7,} tok | total {self.total:>9,} tok | "
                f"finish {chunk.finish_reason:<11} | {elapsed:6.1f}s\n"
            )
            self.stream.flush()


def run(
    options: RunOptions, *, stderr: TextIO | None = None, on_cloud: Callable[[LocalCloud], None] | None = None
) -> RunSummary:
    from longform_core.request import parse_request

    stderr = stderr or sys.stderr
    request = parse_request(options.request)  # fail before starting anything
    started = time.monotonic()
    with provider_for(options) as provider, quiet_moto_logs():
        raw = request.model_dump(mode="json", exclude_none=True)
        raw["model"] = provider.model
        cap = options.max_tokens_per_request or request.max_tokens_per_request or 16_384
        if options.max_tokens_per_request:
            raw["max_tokens_per_request"] = options.max_tokens_per_request
        if options.context_length:
            raw["context_length"] = options.context_length
        config = CloudConfig(
            provider_base_url=provider.base_url,
            model=provider.model,
            api_key=provider.api_key,
            max_tokens_per_request=cap,
            deadline_margin_seconds=options.deadline_margin,
            retry_sleep_scale=options.retry_sleep_scale,
            log_level="INFO" if options.verbose else "WARNING",
            timeouts={"GenerateChunkFunction": options.chunk_timeout} if options.chunk_timeout else {},
        )
        with LocalCloud(config) as cloud:
            if on_cloud is not None:
                on_cloud(cloud)
            job = cloud.submit(raw)
            stderr.write(
                f"longform: job {job.job_id} on {provider.label}, model {provider.model}, "
                f"per-request cap {cap:,} tokens\n"
            )
            desc = cloud.wait(job.job_id, timeout=24 * 3600, on_progress=Progress(stderr, cap, cloud.store))
            result = cloud.store.get_result(job.job_id)
            manifest = cloud.store.find_manifest(job.job_id)
            entered = cloud.states_entered(job.job_id)
            transitions = len(entered)
            loop_transitions = sum(1 for name in entered if name in ("GenerateChunk", "MoreToGenerate"))
            output_path = result_path = None
            if result is not None:
                answer = cloud.store.get_text(result.output_key) or ""
                out = options.out or Path("out") / f"{job.job_id}.md"
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(answer, encoding="utf-8")
                output_path = str(out)
                if result.reasoning_key:
                    reasoning = cloud.store.get_text(result.reasoning_key) or ""
                    out.with_suffix(".reasoning.md").write_text(reasoning, encoding="utf-8")
                result_file = out.with_suffix(".json")
                result_file.write_text(result.model_dump_json(indent=2), encoding="utf-8")
                result_path = str(result_file)
            chunks = result.chunks if result else (manifest.chunks if manifest else 0)
            return RunSummary(
                job_id=job.job_id,
                status=result.status if result else "failed",
                finish_reason=result.finish_reason if result else None,
                stop_reason=result.stop_reason if result else None,
                chunks=chunks,
                prompt_tokens=result.prompt_tokens if result else None,
                output_tokens=result.output_tokens if result else 0,
                cached_tokens=result.cached_tokens if result else 0,
                estimated_cost_usd=result.estimated_cost_usd if result else None,
                state_transitions=transitions,
                transitions_per_chunk=round(loop_transitions / chunks, 3) if chunks else None,
                context_length=result.context_length if result else None,
                context_used=result.context_used if result else None,
                output_path=output_path,
                result_path=result_path,
                execution_status=str(desc["status"]),
                provider=provider.label,
                model=provider.model,
                duration_seconds=round(time.monotonic() - started, 3),
                max_invocation_seconds=round(
                    max((i.duration_seconds for i in cloud.invocations), default=0.0), 3
                ),
                error=(result.error if result else desc.get("cause") or desc.get("error")),
            )


def print_summary(summary: RunSummary, stream: TextIO) -> None:
    lines = [
        "",
        f"status          {summary.status} (finish: {summary.finish_reason}, stop: {summary.stop_reason})",
        f"chunks          {summary.chunks}",
        f"tokens          prompt {summary.prompt_tokens}, output {summary.output_tokens:,}, "
        f"cached {summary.cached_tokens:,}",
        f"state machine   {summary.state_transitions} state transitions in all, "
        f"{summary.transitions_per_chunk} per chunk in the loop; execution {summary.execution_status}",
    ]
    if summary.estimated_cost_usd is not None:
        lines.append(f"estimated cost  ${summary.estimated_cost_usd:.6f}")
    if summary.context_used is not None:
        lines.append(
            f"context used    {summary.context_used:.2%} of the room after the prompt "
            f"(context {summary.context_length:,})"
        )
    if summary.error:
        lines.append(f"error           {summary.error}")
    lines.append(
        f"time            {summary.duration_seconds:.1f}s "
        f"(longest invocation {summary.max_invocation_seconds:.1f}s)"
    )
    lines.append(
        f"output          {summary.output_path}  (result: {summary.result_path}; local bucket {BUCKET})"
    )
    stream.write("\n".join(lines) + "\n")


def summary_json(summary: RunSummary) -> str:
    return json.dumps(summary.to_json(), default=str)
