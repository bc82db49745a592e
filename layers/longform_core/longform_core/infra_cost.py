"""What a job costs on AWS beside its tokens: Lambda GB-seconds, state transitions, S3 requests.

A chunk function holds its Lambda while the provider streams, so the chunk's streaming time times
the chunk function's memory is most of the bill. The manifest keeps the running counts
(``InfraUsage``, updated with each committed chunk and once by Finalize); ``infra_cost`` prices them
with the deployment's prices (template parameters, read from the environment), for ``result.json``,
the API's job view, the completion event and the CLI's summary.

What is counted, per committed chunk: one invocation billed for the chunk's provider call
(``ChunkRecord.duration_ms``; the invocation's own S3 reads and writes, tens of milliseconds, are not
in it) at ``CHUNK_MEMORY_MB``; two state transitions (the Task and the Choice); its S3 requests
(``chunk_s3_requests``: the reads of the job and the writes of the commit, plus one PUT per draft
checkpoint). Once per job: the submit (one API invocation, its S3 requests) and Finalize (its
invocation, its reads of every chunk record, its writes, the closing states). A Lambda attempt that
crashed and was retried is not counted (its record was never committed); Lambda's INIT phase and
CloudWatch Logs are not counted. ``tests/integration/test_infra_cost.py`` checks the request and
transition counts against what a whole job really did under moto.

Default prices: us-east-1, on demand, arm64 (see docs/benchmarks.md for the sources): Lambda
$0.0000133334 per GB-second and $0.20 per million requests; Step Functions Standard $0.025 per
1,000 state transitions; S3 Standard $0.005 per 1,000 PUTs and $0.0004 per 1,000 GETs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from .models import ChunkRecord, Manifest

DEFAULT_CHUNK_MEMORY_MB = 192  # template.yaml ChunkMemorySize (measured: bench/chunk_memory.py)
# S3 requests of one committed chunk: GETs of the request, the manifest and a dead attempt's draft,
# plus output.md from the second chunk on; PUTs of the chunk record, the manifest and output.md
CHUNK_GETS_FIRST, CHUNK_GETS_LATER, CHUNK_PUTS = 3, 4, 3
# the submit: the request and the manifest written, an earlier submit of the same key looked for
SUBMIT_GETS, SUBMIT_PUTS = 1, 2
# Finalize: the manifest, the request and every chunk record read; the manifest, output.md and
# result.json written (reasoning.md and the drop folder's two results when there are some)
FINALIZE_GETS_FIXED, FINALIZE_PUTS_FIXED = 2, 3
# states entered outside the loop: Finalize, JobOutcome and JobDone/JobFailed (+ a Pass on a Catch)
CLOSING_TRANSITIONS = 3
TRANSITIONS_PER_CHUNK = 2  # GenerateChunk (Task) and MoreToGenerate (Choice)


class InfraPrices(BaseModel):
    """USD prices (template parameters; defaults: us-east-1 on demand, arm64)."""

    model_config = ConfigDict(frozen=True)

    lambda_gb_second: float = 0.0000133334
    lambda_request: float = 0.20 / 1_000_000
    state_transition: float = 0.025 / 1_000
    s3_put: float = 0.005 / 1_000
    s3_get: float = 0.0004 / 1_000
    chunk_memory_mb: int = DEFAULT_CHUNK_MEMORY_MB

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> InfraPrices:
        env = os.environ if env is None else env
        names = {
            "lambda_gb_second": "PRICE_LAMBDA_GB_SECOND",
            "lambda_request": "PRICE_LAMBDA_REQUEST",
            "state_transition": "PRICE_STATE_TRANSITION",
            "s3_put": "PRICE_S3_PUT",
            "s3_get": "PRICE_S3_GET",
            "chunk_memory_mb": "CHUNK_MEMORY_MB",
        }
        return cls.model_validate({field: env[var] for field, var in names.items() if env.get(var)})


class InfraUsage(BaseModel):
    """The billable units a job has used so far (kept in its manifest)."""

    lambda_invocations: int = 0
    lambda_mb_ms: int = 0  # memory (MB) x duration (ms), summed over the invocations
    state_transitions: int = 0
    s3_gets: int = 0
    s3_puts: int = 0


class InfraCost(BaseModel):
    """The job's infrastructure bill beside its token cost (``result.json``, the job view, the event)."""

    lambda_invocations: int
    lambda_gb_seconds: float
    state_transitions: int
    s3_get_requests: int
    s3_put_requests: int
    lambda_usd: float
    step_functions_usd: float
    s3_usd: float
    total_usd: float
    token_cost_usd: float | None  # the provider's estimated cost, where it reports one
    share_of_token_cost: float | None  # total_usd / token_cost_usd


def chunk_s3_requests(chunk: ChunkRecord, *, style_known: bool, style_source: str | None) -> tuple[int, int]:
    """(GETs, PUTs) of one committed chunk invocation. Besides the fixed reads and writes and one PUT
    per draft checkpoint: the first chunk that sends a prefill with PrefillStyle auto looks up the
    style learned for the provider and model (``styles/``, a GET), and a chunk that learned a style
    (its first, or a new one after a failed rung) stores it (a PUT)."""
    gets = CHUNK_GETS_FIRST if chunk.index == 0 else CHUNK_GETS_LATER
    # the first chunk's attempt marks the job running (a manifest PUT) before it asks the provider
    # and the billed replies it recorded (billed.py)
    puts = CHUNK_PUTS + int(chunk.index == 0) + chunk.draft_checkpoints + chunk.billed_records
    laddered = style_source in ("cache", "learned", "probe")
    if laddered and not style_known and chunk.prefill_style != "none":
        gets += 1
    if style_source == "learned" and (not style_known or chunk.prefill_ladder):
        puts += 1
    return gets, puts


def record_submit(usage: InfraUsage) -> None:
    usage.lambda_invocations += 1
    usage.s3_gets += SUBMIT_GETS
    usage.s3_puts += SUBMIT_PUTS


def record_chunk(
    usage: InfraUsage, chunk: ChunkRecord, *, memory_mb: int, style_known: bool, style_source: str | None
) -> None:
    """A committed chunk: its invocation, its two state transitions and its S3 requests (called
    before the manifest records it: ``style_known`` is whether the job had a prefill style before)."""
    gets, puts = chunk_s3_requests(chunk, style_known=style_known, style_source=style_source)
    usage.lambda_invocations += 1
    usage.lambda_mb_ms += memory_mb * max(1, chunk.duration_ms)  # Lambda bills at least 1 ms
    usage.state_transitions += TRANSITIONS_PER_CHUNK
    usage.s3_gets += gets
    usage.s3_puts += puts


def record_finalize(
    usage: InfraUsage, *, chunks: int, reasoning: bool, source_results: bool, caught: bool
) -> None:
    """Finalize's invocation (its duration is not known before it ends: counted as a request),
    its reads and writes, and the states that close the execution."""
    usage.lambda_invocations += 1
    usage.s3_gets += FINALIZE_GETS_FIXED + chunks
    usage.s3_puts += FINALIZE_PUTS_FIXED + int(reasoning) + 2 * int(source_results)
    usage.state_transitions += CLOSING_TRANSITIONS + int(caught)


def infra_cost(manifest: Manifest, prices: InfraPrices | None = None) -> InfraCost:
    """Price a job's usage; its share of the token cost when the provider reported one."""
    prices = prices or InfraPrices.from_env()
    usage = manifest.infra
    gb_seconds = usage.lambda_mb_ms / 1024 / 1000
    lambda_usd = gb_seconds * prices.lambda_gb_second + usage.lambda_invocations * prices.lambda_request
    sfn_usd = usage.state_transitions * prices.state_transition
    s3_usd = usage.s3_gets * prices.s3_get + usage.s3_puts * prices.s3_put
    total = lambda_usd + sfn_usd + s3_usd
    tokens = manifest.estimated_cost_usd
    return InfraCost(
        lambda_invocations=usage.lambda_invocations,
        lambda_gb_seconds=round(gb_seconds, 3),
        state_transitions=usage.state_transitions,
        s3_get_requests=usage.s3_gets,
        s3_put_requests=usage.s3_puts,
        lambda_usd=round(lambda_usd, 8),
        step_functions_usd=round(sfn_usd, 8),
        s3_usd=round(s3_usd, 8),
        total_usd=round(total, 8),
        token_cost_usd=tokens,
        share_of_token_cost=round(total / tokens, 4) if tokens else None,
    )


def summary_line(cost: InfraCost) -> str:
    """One line for the CLI: the AWS bill beside the tokens."""
    share = (
        f" ({cost.share_of_token_cost:.1%} of the answer's token cost, ${cost.token_cost_usd:.4f})"
        if (cost.share_of_token_cost is not None and cost.token_cost_usd is not None)
        else ""
    )
    return (
        f"${cost.total_usd:.5f}{share}: Lambda {cost.lambda_gb_seconds:.1f} GB-s in "
        f"{cost.lambda_invocations} invocations ${cost.lambda_usd:.5f}, "
        f"{cost.state_transitions} state transitions ${cost.step_functions_usd:.5f}, "
        f"S3 {cost.s3_put_requests} PUT + {cost.s3_get_requests} GET ${cost.s3_usd:.5f}"
    )
