"""serve's Content-Length check: any header text gets an answer, never an exception."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from longform.local.serve import MAX_BODY_BYTES, content_length_problem


@given(st.text())
def test_any_content_length_is_a_size_or_a_400_or_a_413(value: str) -> None:
    problem = content_length_problem(value)
    text = value.strip()
    if problem is None:
        assert text.isascii() and text.isdigit() and int(text) <= MAX_BODY_BYTES
    else:
        status, message = problem
        assert (status, bool(message)) in ((400, True), (413, True))
        assert status == 413 or not (text.isascii() and text.isdigit())


@given(st.integers(min_value=0, max_value=10**20))
def test_a_byte_count_is_refused_only_over_the_quota(size: int) -> None:
    problem = content_length_problem(str(size))
    assert (problem is None) == (size <= MAX_BODY_BYTES)
    if problem is not None:
        assert problem[0] == 413


def test_no_header_is_no_body() -> None:
    assert content_length_problem(None) is None
