"""Backoff with full jitter, honouring Retry-After."""

from __future__ import annotations

import email.utils
import random

import pytest
from longform_core.retry import RetryPolicy, parse_retry_after


@pytest.mark.parametrize("attempt", range(8))
def test_delay_bounded_by_exponential_ceiling_and_max(attempt: int) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=5.0, rng=random.Random(attempt))
    ceiling = min(5.0, 0.5 * 2**attempt)
    delays = [policy.delay(attempt) for _ in range(200)]
    assert all(0.0 <= d <= ceiling for d in delays)
    # full jitter: spread over the whole range, not pinned to the ceiling
    assert max(delays) > 0.8 * ceiling
    assert min(delays) < 0.2 * ceiling


def test_delay_never_exceeds_max_delay_even_for_late_attempts() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=3.0, rng=random.Random(1))
    assert max(policy.delay(30) for _ in range(500)) <= 3.0


def test_jitter_varies_and_is_reproducible_with_a_seed() -> None:
    a = RetryPolicy(rng=random.Random(42))
    b = RetryPolicy(rng=random.Random(42))
    seq_a = [a.delay(3) for _ in range(10)]
    seq_b = [b.delay(3) for _ in range(10)]
    assert seq_a == seq_b
    assert len(set(seq_a)) == 10
    c = RetryPolicy(rng=random.Random(43))
    assert [c.delay(3) for _ in range(10)] != seq_a


@pytest.mark.parametrize("retry_after", [0.5, 3.0, 20.0, 45.0, 90.0, 300.0])
def test_retry_after_is_never_shortened(retry_after: float) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=2.0, rng=random.Random(7))
    for attempt in range(4):
        d = policy.delay(attempt, retry_after)
        assert retry_after <= d <= retry_after + 0.5


def test_retry_after_zero_or_none_falls_back_to_backoff() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=20.0, rng=random.Random(3))
    assert 0.0 <= policy.delay(2, 0.0) <= 2.0
    assert 0.0 <= policy.delay(2, None) <= 2.0


# ---- parse_retry_after ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), (" 3 ", 3.0), ("0", 0.0), ("1.5", 1.5), ("-4", 0.0)],
)
def test_parse_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value) == expected


def test_parse_http_date() -> None:
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(30.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412450.0) == pytest.approx(30.0)


def test_parse_http_date_in_the_past_is_zero() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after(email.utils.formatdate(now - 100, usegmt=True), now=now) == 0.0


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "Tomorrow at noon", "inf", "nan"])
def test_parse_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value) is None
