"""Exponential backoff with full jitter, honouring ``Retry-After``."""

from __future__ import annotations

import email.utils
import math
import random
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryPolicy:
    """How the provider client retries rate limits and outages within one invocation.

    The Step Functions ``Retry`` on the chunk task is the outer layer: when these attempts are
    used up (or the invocation's deadline is near) the error goes to the workflow, which waits
    longer without paying for an idle Lambda.
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0
    # a longer Retry-After is not waited out in-process: the error goes to the workflow
    max_retry_after: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
        ceiling = min(self.max_delay, self.base_delay * (2**attempt))
        jitter = self.rng.uniform(0.0, ceiling)
        if retry_after is not None and retry_after > 0:
            # never earlier than the provider asked; a little jitter so callers don't stampede
            return retry_after + self.rng.uniform(0.0, self.base_delay)
        return jitter


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date. None when absent or unparsable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
