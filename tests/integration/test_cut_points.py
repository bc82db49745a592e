"""Cut points, exhaustively: on every rung of the prefill ladder, a whole job (the real ASL under
moto, the emulator on loopback) whose seam-critical reply (the first one that continues the answer)
is cut at every token, and, separately, whose invocation is killed there and resumed from its draft.
Whatever the cut point, the job's output is the uncapped answer and it ends ``succeeded``.

The seam-critical reply: on ``assistant`` (llama.cpp: the prefill echoed, merged into the first
delta), ``vllm`` and ``prefix`` the echo and the first new tokens; on ``continue_message`` the
server's preamble ("Sure, continuing where I left off:"), a repeat of the answer's end, and a
dropped seam space, which a reply cut short can hold only the start of (issue 15, item 6).

One stack for the module; every job's request is small (a short answer in short chunks), so a cut
point costs a few chunks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from longform.emulator.model import tokenize
from longform.emulator.server import EmulatorServer
from longform.local.aws import quiet_moto_logs
from longform.local.cloud import CloudConfig, LocalCloud
from longform.local.faults import kill_mid_stream

from .conftest import WRITER, expected

pytestmark = pytest.mark.integration

PREAMBLE = "Sure, continuing where I left off:\n\n"
OVERLAP_CHARS = 60  # as the emulator's other continue-message tests (seam.MIN_OVERLAP_CHARS is 20)
PER_REQUEST = 16
# every rung: the emulator's server and the request's explicit style (no learning: the requests of
# a job are then the same whatever the cut, so the fault always lands on the seam-critical one)
RUNGS: dict[str, dict[str, Any]] = {
    "assistant": {"prefill_style": "assistant", "echo_prefill": "merged"},
    "vllm": {"prefill_style": "vllm"},
    "prefix": {"prefill_style": "prefix"},
    "continue_message": {
        "prefill_style": "reject",
        "continue_preamble": PREAMBLE,
        "continue_overlap_chars": OVERLAP_CHARS,
        "continue_drop_seam_space": True,
    },
}
# the continue-message reply spends tokens on the preamble and the overlap: more per request
TOKENS = {"continue_message": 2 * PER_REQUEST}
REPLY_TOKENS = {rung: TOKENS.get(rung, PER_REQUEST) for rung in RUNGS}
# the answer: long enough that the seam-critical reply is a whole one (cut for length), short
# enough that a job is 3 or 4 chunks
ANSWER_TOKENS = {rung: 2 * REPLY_TOKENS[rung] + (0 if rung == "continue_message" else 4) for rung in RUNGS}
WAVE = 12  # jobs at once


def request_for(rung: str, k: int) -> dict[str, Any]:
    """The job of cut point ``k``; its marker lets a fault aim at this job's requests alone."""
    return {
        "prompt": f"Describe the lamp room of lighthouse {marker(k)}. "
        f"[emulator answer_tokens={ANSWER_TOKENS[rung]}]",
        "prefill_style": rung,
        "max_tokens_per_request": REPLY_TOKENS[rung],
    }


def marker(k: int) -> str:
    return f"number-{k}-of-the-coast"


@pytest.fixture(scope="module")
def cloud(emulator: EmulatorServer) -> Iterator[LocalCloud]:
    # drafts on every token, by count only: a kill at token k leaves a draft of exactly k tokens
    config = CloudConfig(
        provider_base_url=emulator.base_url,
        model=WRITER,
        retry_sleep_scale=0.001,
        draft_interval_seconds=0.0,
        draft_min_tokens=1,
    )
    with quiet_moto_logs(), LocalCloud(config) as stack:
        yield stack


def run_all(cloud: LocalCloud, emulator: EmulatorServer, rung: str, points: list[int]) -> dict[int, str]:
    """Every cut point's job, a wave of them at once (a job waits on moto's interpreter more than
    it uses the CPU); what went wrong, by cut point."""
    wrong: dict[int, str] = {}
    for wave in range(0, len(points), WAVE):
        wrong.update(_run_wave(cloud, emulator, rung, points[wave : wave + WAVE]))
    return wrong


def _run_wave(cloud: LocalCloud, emulator: EmulatorServer, rung: str, points: list[int]) -> dict[int, str]:
    jobs = {k: (request_for(rung, k), cloud.submit(request_for(rung, k)).job_id) for k in points}
    wrong: dict[int, str] = {}
    for k, (request, job_id) in jobs.items():
        desc = cloud.wait(job_id, timeout=600)
        result = cloud.store.get_result(job_id)
        if result is None:
            wrong[k] = f"no result; execution {desc['status']}"
            continue
        output = cloud.store.get_text(result.output_key) or ""
        want = expected(request, emulator).answer
        if result.status != "succeeded" or output != want:
            at = next((i for i, (a, b) in enumerate(zip(output, want, strict=False)) if a != b), None)
            at = min(len(output), len(want)) if at is None else at
            seen = output[max(0, at - 30) : at + 40]
            wrong[k] = f"{result.status} ({result.error}); output differs at {at}: {seen!r}"
            continue
        second = cloud.store.get_chunk(job_id, 1)
        if second.prefill_style != rung:
            wrong[k] = f"the second chunk continued with {second.prefill_style}"
    return wrong


def test_the_seam_critical_reply_is_long_enough_to_matter(emulator: EmulatorServer) -> None:
    """The continue-message reply's cut points cover its whole preamble and its whole overlap."""
    answer = expected(request_for("continue_message", 0), emulator).answer
    head = tokenize(PREAMBLE) + tokenize(answer[-OVERLAP_CHARS:])
    assert len(head) + 5 < REPLY_TOKENS["continue_message"]


@pytest.mark.parametrize("rung", RUNGS)
def test_a_stream_cut_at_any_token_of_the_seam(
    cloud: LocalCloud, emulator: EmulatorServer, rung: str
) -> None:
    emulator.configure(**RUNGS[rung])
    points = list(range(REPLY_TOKENS[rung] + 1))
    for k in points:
        # the job's first request (no prefill) as it is; the second, the first continuation, cut at token k
        emulator.inject({"type": "cut", "after_tokens": k, "match": marker(k), "skip": 1})
    wrong = run_all(cloud, emulator, rung, points)
    assert emulator.pending_faults == []
    assert wrong == {}, f"{len(wrong)} of {len(points)} cut points wrong"


@pytest.mark.parametrize("rung", RUNGS)
def test_an_invocation_killed_at_any_token_of_the_seam_resumes_from_its_draft(
    cloud: LocalCloud, emulator: EmulatorServer, rung: str
) -> None:
    emulator.configure(**RUNGS[rung])
    points = list(range(1, REPLY_TOKENS[rung] + 1))
    with contextlib.ExitStack() as stack:
        kills = {k: stack.enter_context(kill_mid_stream(k, from_stream=2, match=marker(k))) for k in points}
        wrong = run_all(cloud, emulator, rung, points)
    assert {k: kill.count for k, kill in kills.items()} == dict.fromkeys(points, 1)
    assert wrong == {}, f"{len(wrong)} of {len(points)} kill points wrong"
