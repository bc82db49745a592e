"""What the provider bills a local run for, request by request.

A job's records hold the usage of each chunk's kept request (``manifest.prompt_tokens_total``,
across every process that ran it). A provider also bills requests whose reply was not kept as a
chunk: the style probe (one small request that carries the whole prompt), a reply a prefill rung
ignored (the server started over), a reply asked again. ``BillingMeter`` sits in front of the local
cloud's provider client and counts every reply's usage in this process, so the summary adds what
the records leave out: the meter's totals minus the chunks committed meanwhile.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from longform_core.models import Manifest


@dataclass(frozen=True)
class Billed:
    """Usage summed over requests."""

    requests: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def minus(self, other: Billed) -> Billed:
        """What ``self`` counted beyond ``other`` (never below zero: a chunk committed from a draft
        was asked in another process)."""
        return Billed(
            requests=max(0, self.requests - other.requests),
            prompt_tokens=max(0, self.prompt_tokens - other.prompt_tokens),
            cached_tokens=max(0, self.cached_tokens - other.cached_tokens),
            output_tokens=max(0, self.output_tokens - other.output_tokens),
            cost_usd=max(0.0, round(self.cost_usd - other.cost_usd, 8)),
        )

    def plus(self, other: Billed) -> Billed:
        return Billed(
            requests=self.requests + other.requests,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost_usd=round(self.cost_usd + other.cost_usd, 8),
        )


def of_manifest(manifest: Manifest | None) -> Billed:
    """What the job's committed chunks record (each chunk's kept request)."""
    if manifest is None:
        return Billed()
    return Billed(
        requests=manifest.chunks,
        prompt_tokens=manifest.prompt_tokens_total,
        cached_tokens=manifest.cached_tokens_total,
        output_tokens=manifest.completion_tokens_total,
        cost_usd=manifest.estimated_cost_usd or 0.0,
    )


class BillingMeter:
    """A provider client that counts the usage of every reply it returns (thread-safe)."""

    def __init__(self, provider: Any):
        self._provider = provider
        self._lock = threading.Lock()
        self._billed = Billed()
        self.baseline = Billed()  # what the job's records held before this process asked anything

    def start_from(self, manifest: Manifest | None) -> None:
        """Call before the job's execution starts in this process."""
        self.baseline = of_manifest(manifest)

    def total(self, manifest: Manifest | None) -> Billed:
        """Everything billed for the job: its records, plus the requests of this process that
        did not become a committed chunk."""
        recorded = of_manifest(manifest)
        return recorded.plus(self.billed.minus(recorded.minus(self.baseline)))

    def chat(self, body: dict[str, Any], **kwargs: Any) -> Any:
        outcome = self._provider.chat(body, **kwargs)
        usage = getattr(outcome, "usage", None)
        if usage is not None and not usage.estimated:
            with self._lock:
                b = self._billed
                self._billed = Billed(
                    requests=b.requests + 1,
                    prompt_tokens=b.prompt_tokens + usage.prompt_tokens,
                    cached_tokens=b.cached_tokens + usage.cached_tokens,
                    output_tokens=b.output_tokens + usage.completion_tokens,
                    cost_usd=round(b.cost_usd + (usage.estimated_cost or 0.0), 8),
                )
        return outcome

    def __getattr__(self, name: str) -> Any:  # server_props and the like: the client's own
        return getattr(self._provider, name)

    @property
    def billed(self) -> Billed:
        with self._lock:
            return self._billed


def install_meter() -> BillingMeter:
    """Put a meter in front of the provider of the local cloud's services (one job per run)."""
    from longform_core.runtime import get_services

    services = get_services()
    if not isinstance(services.provider, BillingMeter):
        services.provider = BillingMeter(services.provider)
    return services.provider
