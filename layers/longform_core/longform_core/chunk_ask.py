"""Asking the provider for a chunk: the request shrunk until it fits the context, stepped down the
prefill ladder (``prefill.py``) until the server continues the answer, and checked for a server
that started over.

Three steps around one request:

- **context shrinking**: a context-window error lowers ``max_tokens`` to what fits
  (``continuation.shrink_after_context_error``); when nothing fits the job ends
  ``context_exhausted``;
- **the ladder**: a refused prefill (or a raw-completion rung the server does not serve) steps down
  one rung, or trims the trailing whitespace it objected to;
- **the starts-over check**: a reply that ignored the prefill (``prefill.starts_over``), failed
  the style probe, or (continue message) only repeated the answer is not kept: the next rung, or
  the continue message once more, is asked in the same invocation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from .chunk_draft import checkpointer
from .chunk_filing import only_repeated
from .chunk_job import ChunkJob, Reply, context_exhausted, sent_prefill, started_over, strip_reply_echo
from .chunk_style import StyleChoice, choose_style, learning, new_turn_shown, probe_passes, remember_style
from .continuation import (
    Budget,
    build_body,
    chunk_deadline,
    chunk_finish,
    estimate_prompt_tokens,
    plan_max_tokens,
    shrink_after_context_error,
)
from .draft import Checkpointer
from .echo import EchoResult, SentPrefill
from .errors import ContextWindowExceeded, PrefillRejected, ProviderError
from .models import utcnow
from .prefill import LadderStep, Rung, StepReason, next_rung
from .provider import StreamOutcome
from .raw_completion import CompletionRung
from .services import Services
from .style_probe import evict_style

# context-window errors one chunk may answer by shrinking: with numbers one or two are enough; a
# wording without numbers is answered by halving, which needs up to log2(cap) tries
MAX_CONTEXT_RETRIES = 24


@dataclass(frozen=True)
class _Answer:
    """One request's reply, as received and without its echo, and what it was sent."""

    outcome: StreamOutcome
    echo: EchoResult
    sent: SentPrefill
    trimmed: str
    checkpoints: Checkpointer | None


def _tokens(outcome: StreamOutcome) -> int:
    """The completion tokens a reply cost (its usage, else the deltas counted)."""
    return (outcome.usage.completion_tokens if outcome.usage else outcome.deltas) or 0


@dataclass
class _Asking:
    """Where one chunk's ask stands: the rung, the steps that failed before it, the room asked for.
    Owned by :func:`ask` alone; nothing of the job it reads is changed."""

    services: Services
    job: ChunkJob
    model: str
    deadline: float
    choice: StyleChoice
    completion: CompletionRung
    prompt_estimate: int
    exact: bool
    max_tokens: int
    rung: Rung
    learned_context: int | None
    context_retries: int = 0
    steps: list[LadderStep] = field(default_factory=list)
    discarded: int = 0
    ask_again: bool = False

    @property
    def has_prefill(self) -> bool:
        return bool(self.job.prefill.text)

    @property
    def checks_start(self) -> bool:
        """Is a reply on this rung checked for a server that ignored the prefill?"""
        return self.has_prefill and self.choice.ladder and self.rung.style != "continue_message"

    def step_down(self, reason: StepReason, to: Rung, *, tokens: int = 0) -> None:
        self.steps.append(LadderStep(self.rung, reason))
        self.discarded += tokens
        self.rung = to

    # ---- one request ---------------------------------------------------------------------------

    def request(self) -> _Answer | None:
        """Ask once; None when the answer is not kept (the next request is set up instead)."""
        sent, trimmed = sent_prefill(self.job, self.rung)
        body = build_body(
            self.job.request,
            model=self.model,
            prefill=sent.text,
            max_tokens=self.max_tokens,
            prefill_style=self.rung.style,
            ask_again=self.ask_again,
        )
        if self.rung.style == "completion" and self.has_prefill:
            prepared = self.completion.prepare(body, sent.text)
            if prepared is None:  # no template after all, or it does not render this answer
                self.step_down(
                    StepReason.REFUSED, next_rung(self.rung, StepReason.REFUSED, ladder=True) or _LAST
                )
                return None
            body, trimmed = prepared
        checkpoints = checkpointer(
            self.services, self.job, self.rung, sent, trimmed, self.max_tokens, check_start=self.checks_start
        )
        try:
            outcome = self.services.provider.chat(
                body, deadline=self.deadline, stream=self._stream, on_progress=checkpoints
            )
        except ContextWindowExceeded as exc:
            self.shrink(exc)
            return None
        except PrefillRejected as exc:
            if not self.rejected(exc):
                raise
            return None
        except ProviderError as exc:
            if not self.completion_not_served(exc):
                raise
            return None
        echo = strip_reply_echo(
            self.job, self.rung, sent, outcome.content, outcome.reasoning, outcome.first_delta
        )
        answer = _Answer(outcome, echo, sent, trimmed, checkpoints)
        return None if self.asks_again(answer) else answer

    @property
    def _stream(self) -> bool:
        stream = self.job.request.stream
        return stream if stream is not None else self.services.settings.provider_stream

    # ---- context shrinking ---------------------------------------------------------------------

    def shrink(self, exc: ContextWindowExceeded) -> None:
        """Lower ``max_tokens`` to what the error says fits; raise ContextExhausted when nothing does."""
        self.context_retries += 1
        self.learned_context = exc.limit.context_length or self.learned_context
        self.max_tokens = shrink_after_context_error(
            exc.limit,
            sent_max_tokens=self.max_tokens,
            estimated_prompt=self.prompt_estimate if self.exact else None,
        )
        if self.max_tokens < 1 or self.context_retries > MAX_CONTEXT_RETRIES:
            message = f"job {self.job.manifest.job_id}: nothing more fits in the context window: {exc}"
            raise context_exhausted(self.services.store, self.job, self.learned_context, message) from exc

    # ---- the ladder ----------------------------------------------------------------------------

    def rejected(self, exc: PrefillRejected) -> bool:
        """A 400 refused the prefill: step down (or trim). False: nowhere left to go."""
        reason = StepReason.TRAILING_WHITESPACE if exc.reason == "trailing_whitespace" else StepReason.REFUSED
        step = next_rung(
            self.rung, reason, ladder=self.choice.ladder, completion=self.completion.available(self.rung)
        )
        if step is None or not self.has_prefill:
            return False
        self.step_down(reason, step)
        return True

    def completion_not_served(self, exc: ProviderError) -> bool:
        """No ``/completions`` endpoint here (404), or it takes no raw prompt: the rung is not
        served, so the next one is asked. False: the error is the chunk's."""
        if exc.retryable or self.rung.style != "completion" or not self.choice.ladder:
            return False
        self.step_down(StepReason.REFUSED, next_rung(self.rung, StepReason.REFUSED, ladder=True) or _LAST)
        return True

    # ---- the starts-over check -----------------------------------------------------------------

    def asks_again(self, answer: _Answer) -> bool:
        """Is the reply not kept: the server ignored the prefill, the style failed its probe, or a
        continue message only repeated the answer? Then the next request is set up."""
        outcome, echo = answer.outcome, answer.echo
        if self.checks_start:
            seen = outcome.usage.prompt_tokens if outcome.usage else None
            due = self.prompt_estimate if self.exact else None
            ignored = started_over(
                self.job,
                outcome.content,
                outcome.reasoning,
                echo,
                tokens=_tokens(outcome),
                prompt_tokens=seen,
                expected_prompt_tokens=due,
            )
            # every reply with text that reports its prompt: a new turn fails the style whatever its
            # text says (an empty reply has no turn to glue: a full context stops so, llama.cpp)
            said = bool(echo.content or echo.reasoning)
            ignored = ignored or (said and new_turn_shown(self.job, self.rung, seen, due))
            lower = self._below() if ignored else None
            if ignored:  # a style found wrong leaves the cache (style_probe.evict_style)
                settings = self.services.settings
                evict_style(self.services.store, settings.provider_base_url, self.model, self.rung)
            if lower is not None:
                # the server started over: what it streamed is no continuation to resume from
                self._drop_drafts(answer)
                self.step_down(StepReason.IGNORED, lower, tokens=_tokens(outcome))
                return True
            probe = self.services.settings.prefill_probe and learning(
                self.choice, self.steps, self.job, self.rung
            )
            if probe and not probe_passes(
                self.services, self.job, self.model, self.rung, echo.content, self.deadline
            ):
                # a new turn glued to the text (llama-cpp-python's server): never learned, never cached
                self._drop_drafts(answer)
                self.step_down(StepReason.IGNORED, self._below() or self.rung, tokens=_tokens(outcome))
                return True
        if (
            self.has_prefill
            and not self.ask_again
            and only_repeated(self.job, self.rung, answer.trimmed, outcome, echo)
        ):
            # a continue-message reply that only repeated the answer: asked once more, differently
            # (then the job goes on, or stops truthfully: no_progress)
            self._drop_drafts(answer)
            self.step_down(StepReason.REPEATED, self.rung, tokens=_tokens(outcome))
            self.ask_again = True
            return True
        return False

    def _below(self) -> Rung | None:
        """The rung after one whose prefill was ignored (asks for the chat template only now: the
        raw-completion rung is on the ladder only when one is known)."""
        return next_rung(
            self.rung, StepReason.IGNORED, ladder=True, completion=self.completion.available(self.rung)
        )

    def _drop_drafts(self, answer: _Answer) -> None:
        if answer.checkpoints is not None and answer.checkpoints.written:
            manifest = self.job.manifest
            self.services.store.delete_draft(manifest.job_id, manifest.chunks)


_LAST = Rung("continue_message")  # the rung below every other


def ask(services: Services, job: ChunkJob, budget: Budget, remaining_ms: Callable[[], int]) -> Reply:
    """The provider's reply to the next request: shrunk until it fits the context, and stepped
    down the prefill ladder (``prefill.py``) until the server continues the answer."""
    settings, manifest, request = services.settings, job.manifest, job.request
    prompt_estimate, exact = estimate_prompt_tokens(manifest, request, job.prefill.text)
    max_tokens = plan_max_tokens(budget, manifest, prompt_tokens=prompt_estimate, prompt_exact=exact)
    if max_tokens < 1:
        message = (
            f"job {manifest.job_id}: no room left in the {budget.context_length}-token context "
            f"(prompt ~{prompt_estimate} tokens)"
        )
        raise context_exhausted(services.store, job, budget.context_length, message)
    model = request.model or settings.default_model
    deadline = chunk_deadline(services.clock(), remaining_ms(), settings.deadline_margin_seconds)
    started_at, started = utcnow(), services.clock()
    choice = choose_style(services, job, model)
    asking = _Asking(
        services,
        job,
        model,
        deadline,
        choice,
        CompletionRung(services, request, model),
        prompt_estimate,
        exact,
        max_tokens,
        choice.rung,
        learned_context=manifest.context_length,
    )
    answer = asking.request()
    while answer is None:
        answer = asking.request()
    return _settle(asking, answer, started_at, duration_ms=int((services.clock() - started) * 1000))


def _settle(asking: _Asking, answer: _Answer, started_at: datetime, *, duration_ms: int) -> Reply:
    """The kept answer as the reply to commit: its echo stripped, the style it proved remembered."""
    services, job, echo = asking.services, asking.job, answer.echo
    outcome = answer.outcome
    if echo.stripped:
        outcome = replace(outcome, content=echo.content, reasoning=echo.reasoning)
    style_source = None
    if asking.has_prefill:
        steps = [s for s in asking.steps if s.reason != StepReason.REPEATED]
        style_source = remember_style(services, job, asking.model, asking.choice, asking.rung, steps)
    no_new_tokens = outcome.usage is None or not outcome.usage.completion_tokens
    finish = chunk_finish(outcome.finish_reason, outcome.ended_by)
    if not outcome.has_text and no_new_tokens and finish == "length":
        # cut for length before a single new token although max_tokens >= 1: the only limit left
        # is the context (llama.cpp stops a full context this way, without an error)
        message = (
            f"job {job.manifest.job_id}: the provider stopped for length without adding text: "
            "the context is full"
        )
        raise context_exhausted(
            services.store, job, asking.learned_context, message, style_source=style_source
        )
    return Reply(
        outcome,
        asking.max_tokens,
        asking.context_retries,
        asking.learned_context,
        echo,
        started_at,
        duration_ms,
        rung=asking.rung,
        steps=tuple(asking.steps),
        trimmed=answer.trimmed,
        discarded_tokens=asking.discarded,
        sent_prefill=asking.has_prefill,
        drafts_written=answer.checkpoints.written if answer.checkpoints is not None else 0,
        style_source=style_source,
    )
