"""What a long job costs on AWS beside its tokens: a 100,000-token job at 20, 30 and 60 tokens/s.

    .venv/bin/python bench/cost.py                      # the table in docs/benchmarks.md
    .venv/bin/python bench/cost.py --tokens 40000 --prompt 2000 --rates 25,50

The AWS side is priced by the product's own accounting (``longform_core.infra_cost``: the same
``record_submit`` / ``record_chunk`` / ``record_finalize`` and ``infra_cost`` every job's
``result.json`` uses), fed with the chunks such a job has: the per-request cap (16,384) of output
each, every chunk streaming for its tokens / rate seconds, the draft checkpoints the template's
settings give it (one PUT per max(DraftIntervalSeconds, DraftMinTokens / rate) seconds of stream).
The S3 requests and state transitions per chunk are the ones ``tests/integration/test_infra_cost.py``
checks against real jobs. Prices: us-east-1 on demand, arm64 (the template's defaults).

The tokens are priced as DeepInfra prices DeepSeek-V3.2 (its model page): $0.40 per million output
tokens, $0.27 per million input tokens, $0.216 per million cached input tokens. Each chunk re-sends
the prompt and the answer so far; the part the previous request already sent is counted as cached
(the provider's prefix cache), the rest as input.

"today" is the global 512 MB every function had; "new" is the chunk function's size set from
its measured peak with headroom (``ChunkMemorySize`` 192 MB; bench/chunk_memory.py measured 108 MB);
"floor" is Lambda's smallest size (128 MB), too close to that peak to deploy, shown for
comparison. The draft columns show the checkpoints' share of
the AWS bill at the template's defaults (5 s, 2,000 tokens) and, for comparison, by time only
(5 s, ``DraftMinTokens`` 0: 12 PUTs a minute).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "layers" / "longform_core")]

from longform_core.infra_cost import (  # noqa: E402
    InfraCost,
    InfraPrices,
    InfraUsage,
    record_chunk,
    record_finalize,
    record_submit,
)
from longform_core.models import ChunkRecord, Manifest  # noqa: E402

OUT_PER_M, IN_PER_M, CACHED_PER_M = 0.40, 0.27, 0.216  # DeepSeek-V3.2 on DeepInfra, USD per million
CAP = 16_384
TODAY_MB = 512
NEW_MB = 192  # template.yaml ChunkMemorySize
FLOOR_MB = 128  # Lambda's smallest size: under 1.2x the measured peak (108 MB), shown for comparison
DRAFT_INTERVAL, DRAFT_MIN_TOKENS = 5.0, 2_000  # template.yaml defaults


@dataclass
class Row:
    rate: float
    setting: str
    memory_mb: int
    drafts: str
    cost: InfraCost
    draft_puts: int
    draft_usd: float
    token_usd: float


def token_cost(tokens: int, prompt: int, cap: int = CAP) -> float:
    """Output, input and cached input of the job's requests (each re-sends the answer so far)."""
    usd, done, previous_prompt = 0.0, 0, 0
    while done < tokens:
        out = min(cap, tokens - done)
        sent = prompt + done
        cached = previous_prompt
        usd += out * OUT_PER_M / 1e6 + (sent - cached) * IN_PER_M / 1e6 + cached * CACHED_PER_M / 1e6
        previous_prompt, done = sent, done + out
    return usd


def draft_puts(tokens: int, rate: float, interval: float, min_tokens: int) -> int:
    seconds = tokens / rate
    every = max(interval, min_tokens / rate)
    return int(seconds // every) if every > 0 else 0


def job_cost(
    tokens: int, rate: float, memory_mb: int, *, interval: float, min_tokens: int, cap: int = CAP
) -> tuple[InfraCost, int]:
    """The infrastructure cost of the job, through the product's own accounting."""
    usage = InfraUsage()
    record_submit(usage)
    done, index, puts = 0, 0, 0
    while done < tokens:
        out = min(cap, tokens - done)
        drafts = draft_puts(out, rate, interval, min_tokens)
        puts += drafts
        chunk = ChunkRecord(
            job_id="bench",
            index=index,
            text="",
            finish_reason="length" if done + out < tokens else "stop",
            max_tokens=cap,
            completion_tokens=out,
            started_at=datetime.now(UTC),
            duration_ms=math.ceil(out / rate * 1000),
            draft_checkpoints=drafts,
            billed_records=1,  # the kept reply's bill (billed.py): one PUT a chunk
            prefill_style="assistant" if index else "none",
        )
        record_chunk(usage, chunk, memory_mb=memory_mb, style_known=index > 1, style_source="cache")
        done, index = done + out, index + 1
    record_finalize(usage, chunks=index, reasoning=False, source_results=False, caught=False)
    manifest = Manifest(job_id="bench", model="deepseek-ai/DeepSeek-V3.2", infra=usage)
    from longform_core.infra_cost import infra_cost

    return infra_cost(manifest, InfraPrices(chunk_memory_mb=memory_mb)), puts


def rows(tokens: int, prompt: int, rates: list[float]) -> list[Row]:
    out: list[Row] = []
    tokens_usd = token_cost(tokens, prompt)
    for rate in rates:
        for setting, memory in (("today", TODAY_MB), ("new", NEW_MB), ("floor", FLOOR_MB)):
            for drafts, min_tokens in (("5 s / 2,000 tok", DRAFT_MIN_TOKENS), ("5 s only", 0)):
                if setting != "new" and min_tokens == 0:
                    continue
                cost, puts = job_cost(tokens, rate, memory, interval=DRAFT_INTERVAL, min_tokens=min_tokens)
                draft_usd = puts * InfraPrices().s3_put
                out.append(Row(rate, setting, memory, drafts, cost, puts, draft_usd, tokens_usd))
    return out


def table(all_rows: list[Row], tokens: int, prompt: int) -> str:
    lines = [
        f"A {tokens:,}-token job ({prompt:,}-token prompt, {math.ceil(tokens / CAP)} chunks of at most "
        f"{CAP:,}) "
        f"on DeepSeek-V3.2: tokens ${all_rows[0].token_usd:.4f}",
        "",
        "| tokens/s | setting | chunk MB | drafts | GB-s | Lambda $ | Step Functions $ | S3 $ | AWS $ "
        "| AWS / tokens | draft PUTs | drafts' share of AWS |",
        "| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in all_rows:
        c = r.cost
        share = c.total_usd / r.token_usd
        lines.append(
            f"| {r.rate:g} | {r.setting} | {r.memory_mb} | {r.drafts} | {c.lambda_gb_seconds:,.0f} "
            f"| {c.lambda_usd:.4f} | {c.step_functions_usd:.5f} | {c.s3_usd:.5f} | {c.total_usd:.4f} "
            f"| {share:.1%} | {r.draft_puts} "
            f"| {r.draft_usd / c.total_usd:.2%} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--prompt", type=int, default=1_000, help="tokens of the job's prompt")
    parser.add_argument("--rates", default="20,30,60", help="tokens per second, comma-separated")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    print(table(rows(args.tokens, args.prompt, rates), args.tokens, args.prompt))
    return 0


if __name__ == "__main__":
    sys.exit(main())
