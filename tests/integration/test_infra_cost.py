"""Every job reports its AWS bill beside its tokens (infra_cost.py), and the counts it bills are what
the job really did: S3 requests counted on the handlers' own client, state transitions from the
execution's history, GB-seconds from the chunks' durations and the chunk function's memory."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from longform_core.infra_cost import InfraCost, InfraPrices, infra_cost
from longform_core.notify import finished_event_detail
from longform_core.runtime import get_services
from longform_core.status import job_view

from .conftest import CloudFactory, expected, run_job

pytestmark = pytest.mark.integration

# what S3 bills at the PUT rate and at the GET rate (DELETE is free)
PUT_CLASS = {"PutObject", "CopyObject", "ListObjectsV2", "ListObjects"}
GET_CLASS = {"GetObject", "HeadObject"}


def prompt(tokens: int) -> str:
    return f"Write a guide to tide pools. [emulator answer_tokens={tokens}]"


def count_s3(calls: list[str]) -> tuple[int, int]:
    counts = Counter(calls)
    return sum(counts[n] for n in GET_CLASS), sum(counts[n] for n in PUT_CLASS)


def run_counted(cloud: Any, request: dict[str, Any]) -> tuple[Any, list[str], str]:
    calls: list[str] = []
    get_services().store.s3.meta.events.register(
        "before-call.s3", lambda model, **_: calls.append(model.name)
    )
    result, _, output = run_job(cloud, request)
    return result, calls, output


@pytest.mark.parametrize(
    ("overrides", "answer", "cap"),
    [
        ({}, 2_500, 500),  # five chunks, a prefill learned on the second (a style GET and PUT)
        ({"prefill_style": "assistant"}, 1_200, 400),  # the deployment's style: no look-up
        ({}, 300, 1_000),  # one chunk, no prefill
    ],
)
def test_billed_counts_are_what_the_job_did(
    make_cloud: CloudFactory, emulator, overrides: dict[str, Any], answer: int, cap: int
) -> None:
    request = {"prompt": prompt(answer), "max_tokens_per_request": cap}
    with make_cloud(**overrides) as cloud:
        result, calls, output = run_counted(cloud, request)
        assert output == expected(request, emulator).answer
        manifest = cloud.store.find_manifest(result.job_id)
        usage = manifest.infra
        gets, puts = count_s3(calls)
        # the submit's requests are counted too (in-process here, the API function on AWS)
        assert (usage.s3_gets, usage.s3_puts) == (gets, puts), Counter(calls)
        assert usage.state_transitions == cloud.state_transitions(result.job_id)
        invoked = [i.function for i in cloud.invocations]
        assert usage.lambda_invocations == 1 + len(invoked)  # the submit, each chunk, Finalize
        chunks = [cloud.store.get_chunk(result.job_id, n) for n in range(result.chunks)]
        memory = InfraPrices.from_env().chunk_memory_mb
        assert usage.lambda_mb_ms == sum(memory * max(1, c.duration_ms) for c in chunks)


def test_result_view_and_event_carry_the_priced_cost(make_cloud: CloudFactory, emulator) -> None:
    emulator.configure(price_input_per_mtok=0.27, price_output_per_mtok=0.40)
    request = {"prompt": prompt(1_500), "max_tokens_per_request": 500}
    with make_cloud() as cloud:
        result, _, _ = run_job(cloud, request)
        manifest = cloud.store.find_manifest(result.job_id)
        cost = result.infrastructure_cost
        assert cost is not None and cost == infra_cost(manifest)
        stored = json.loads(cloud.store.get_text(f"jobs/{result.job_id}/result.json"))
        assert InfraCost.model_validate(stored["infrastructure_cost"]) == cost
        assert job_view(manifest).infrastructure_cost == cost
        event = finished_event_detail(result, bucket="b")
        assert event["infrastructure_cost"] == cost.model_dump()
        prices = InfraPrices()
        want = (
            manifest.infra.lambda_mb_ms / 1024 / 1000 * prices.lambda_gb_second
            + manifest.infra.lambda_invocations * prices.lambda_request
            + manifest.infra.state_transitions * prices.state_transition
            + manifest.infra.s3_gets * prices.s3_get
            + manifest.infra.s3_puts * prices.s3_put
        )
        assert cost.total_usd == pytest.approx(want, abs=1e-8)
        assert cost.token_cost_usd == result.estimated_cost_usd and cost.token_cost_usd
        assert cost.share_of_token_cost == pytest.approx(cost.total_usd / cost.token_cost_usd, abs=1e-4)


def test_prices_and_memory_come_from_the_template_parameters() -> None:
    prices = InfraPrices.from_env(
        {"PRICE_LAMBDA_GB_SECOND": "0.0000166667", "PRICE_S3_PUT": "0.0000054", "CHUNK_MEMORY_MB": "1024"}
    )
    assert prices.lambda_gb_second == 0.0000166667  # x86_64's rate
    assert prices.s3_put == 0.0000054
    assert prices.chunk_memory_mb == 1024
    assert prices.state_transition == InfraPrices().state_transition  # unset: the default


def test_the_cli_summary_has_the_aws_cost_line(tmp_path, capsys, monkeypatch) -> None:
    """`longform run` prints the job's AWS bill beside its tokens, the numbers of its result.json."""
    from longform.cli import main

    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    out = tmp_path / "answer.md"
    prompt = "Write a guide to tide pools. [emulator answer_tokens=1500]"
    code = main(
        [
            "run",
            "--emulator",
            "--prompt",
            prompt,
            "--max-tokens-per-request",
            "500",
            "--out",
            str(out),
            "--json",
        ]
    )
    printed = capsys.readouterr()
    summary = json.loads(printed.out.strip().splitlines()[-1])
    assert code == 0 and summary["chunks"] == 3
    cost = InfraCost.model_validate(summary["infrastructure_cost"])
    assert cost.lambda_invocations == 1 + 3 + 1 and cost.state_transitions == 3 * 2 + 3
    (line,) = [ln for ln in printed.err.splitlines() if ln.startswith("AWS cost")]
    assert f"${cost.total_usd:.5f}" in line and f"{cost.state_transitions} state transitions" in line
