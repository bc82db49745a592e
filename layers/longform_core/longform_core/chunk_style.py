"""Which prefill style a chunk starts on, and what it learned (``prefill.py`` is the ladder itself).

A style given by the request or the deployment is used as it is; with ``auto`` the job's learned
style, else a fresh cached one, else the top of the ladder. A style just learned is probed first
(``style_probe.py``) and then cached next to the jobs for other jobs of the same server and model.
Every reply whose usage reports its prompt is checked for a new turn (:func:`new_turn_shown`), so a
style that goes wrong in the middle of a job is found on the reply it goes wrong.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .chunk_job import ChunkJob, sent_prefill
from .models import utcnow
from .prefill import LadderStep, LearnedStyle, Rung, opens_new_turn
from .services import Services
from .style_probe import evict_style, probe_style

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StyleChoice:
    """The rung a chunk starts on, whether it may step down the ladder, and where it came from."""

    rung: Rung
    ladder: bool
    source: str | None  # "request", "deployment", "cache", "learned", "probe" (nothing known yet)


def choose_style(services: Services, job: ChunkJob, model: str) -> StyleChoice:
    settings, request, manifest = services.settings, job.request, job.manifest
    requested = request.prefill_style or settings.prefill_style
    if requested != "auto":
        source = "request" if request.prefill_style else "deployment"
        return StyleChoice(Rung(requested, trim=manifest.prefill_trim), False, source)
    if manifest.prefill_style is not None and manifest.prefill_style != "none":
        rung = Rung(manifest.prefill_style, trim=manifest.prefill_trim)
        return StyleChoice(rung, True, manifest.prefill_style_source or "learned")
    if not job.prefill.text:
        return StyleChoice(Rung("assistant"), True, None)  # no prefill: nothing to learn from
    cached = services.store.get_learned_style(settings.provider_base_url, model)
    if cached is not None and cached.fresh(utcnow(), settings.prefill_style_ttl_seconds):
        return StyleChoice(cached.rung, True, "cache")
    return StyleChoice(Rung("assistant"), True, "probe")


def remember_style(
    services: Services, job: ChunkJob, model: str, choice: StyleChoice, rung: Rung, steps: list[LadderStep]
) -> str | None:
    """Where the style the chunk used came from (kept in the manifest, committed with the chunk);
    when it was just learned (or changed), it is cached next to the jobs."""
    if not choice.ladder:
        return choice.source
    if choice.source == "probe" or steps:
        services.store.put_learned_style(
            LearnedStyle(
                base_url=services.settings.provider_base_url,
                model=model,
                style=rung.style,
                trim_trailing_whitespace=rung.trim,
                learned_at=utcnow(),
                job_id=job.manifest.job_id,
                requests=len(steps) + 1,
                steps=steps,
            )
        )
        return "learned"
    return choice.source


def learning(choice: StyleChoice, steps: list[LadderStep], job: ChunkJob, rung: Rung) -> bool:
    """Is this reply's chat-prefill style about to be learned (and cached)? Then it is probed first
    (a reasoning model's thought is not cut for a probe: its style stands on the reply's evidence;
    the completion rung sends no chat prefill to ignore)."""
    learning = choice.source == "probe" or bool(steps)
    # a cached style is probed once a job (its first prefill): a server may report no usage to
    # check it by (llama-cpp-python streams none), and a wrong one is then evicted
    learning = learning or (choice.source == "cache" and job.manifest.prefill_style in (None, "none"))
    return learning and rung.style != "completion" and not job.reasoning_so_far


def new_turn_shown(job: ChunkJob, rung: Rung, prompt_tokens: int | None, expected: int | None) -> bool:
    """Does a reply's reported prompt hold a new turn (``prefill.opens_new_turn``)? Checked on
    every reply that reports one: ``expected`` is what an honoured prefill costs, the last reported
    prompt plus the completion tokens committed since (exact figures only; None: unknown). Not for
    the raw-completion rung (no chat prefill to close) nor while a reasoning model's thought is
    carried (its prompt need not hold the thought)."""
    if rung.style in ("completion", "continue_message") or job.reasoning_so_far or not job.prefill.text:
        return False
    if not opens_new_turn(prompt_tokens, expected):
        return False
    logger.warning(
        "prefill style %s: the server reported %s prompt tokens where a continued prefill costs %s: "
        "it opened a new turn; the reply is not kept, stepping down",
        rung.describe(),
        prompt_tokens,
        expected,
    )
    return True


def probe_passes(
    services: Services, job: ChunkJob, model: str, rung: Rung, reply: str, deadline: float
) -> bool:
    """Does ``rung`` really continue a prefill here? (``style_probe.py``; unknown counts as yes)
    ``reply``: what the server wrote after the prefill (echo stripped)."""
    sent = sent_prefill(job, rung)[0].text
    result = probe_style(
        services.provider,
        job.request,
        model=model,
        rung=rung,
        prefill=sent,
        reply=reply,
        deadline=deadline,
        now=services.clock(),
    )
    if result is None:
        return True
    if not result.passed:
        logger.warning(
            "prefill style %s probed: a prefill cut at %r was answered %r (expected the word's rest %r): "
            "the server opens a new turn; stepping down",
            rung.describe(),
            result.prefill_tail,
            result.reply[:40],
            result.expected,
        )
        evict_style(services.store, services.settings.provider_base_url, model, rung)
    return result.passed
