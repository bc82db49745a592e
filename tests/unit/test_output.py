"""The read side's use cases without HTTP: the committed output from an offset (output.py), one
job's view and the listing (status.py)."""

from __future__ import annotations

import pytest
from longform_core.errors import JobNotFound, PageTokenInvalid
from longform_core.models import Manifest
from longform_core.output import PRESIGNED_URL_SECONDS, read_output
from longform_core.services import Services
from longform_core.status import current_status, get_job, list_jobs

TEXT = "Naïve sailors read the moon — 月 — and the sea. " * 4


def seed(services: Services, job_id: str, *, status: str = "running", committed: int | None = None) -> None:
    services.store.put_manifest(
        Manifest(
            job_id=job_id,
            model="m/1",
            status=status,  # type: ignore[arg-type]
            answer_chars=len(TEXT) if committed is None else committed,
        )
    )
    services.store.write_running_text(job_id, answer=TEXT, reasoning=None)


def test_output_is_the_committed_text_from_the_offset(services: Services) -> None:
    seed(services, "job-1", committed=40)
    page = read_output("job-1", 10, services)
    assert page.text == TEXT[10:40]  # characters, and only what the manifest committed
    assert (page.offset, page.next_offset, page.bytes) == (10, 40, len(TEXT[10:40].encode()))
    assert page.complete is False
    assert page.url is None and page.expires_in is None and page.byte_offset is None
    beyond = read_output("job-1", 99, services)
    assert (beyond.text, beyond.next_offset) == ("", 99)


def test_output_of_an_ended_job_is_complete_at_its_end(services: Services) -> None:
    seed(services, "job-2", status="succeeded")
    assert read_output("job-2", 0, services).complete is True
    assert read_output("job-2", len(TEXT), services).complete is True


def test_large_output_is_a_presigned_url_with_the_byte_offset(services: Services) -> None:
    services.settings = services.settings.model_copy(update={"output_inline_max_bytes": 50})
    seed(services, "job-3")
    page = read_output("job-3", 5, services)
    assert page.text is None
    assert page.url is not None and "/jobs/job-3/output.md" in page.url
    assert page.expires_in == PRESIGNED_URL_SECONDS
    assert page.byte_offset == len(TEXT[:5].encode())
    assert page.bytes == len(TEXT[5:].encode())
    assert read_output("job-3", len(TEXT) - 10, services).text == TEXT[-10:]


def test_an_unknown_job_is_job_not_found(services: Services) -> None:
    with pytest.raises(JobNotFound):
        read_output("no-such-job", 0, services)
    with pytest.raises(JobNotFound):
        get_job("no-such-job", services)
    assert current_status("no-such-job", services) == "queued"


def test_listing_is_the_views_of_the_executions_that_are_jobs(services: Services) -> None:
    seed(services, "job-4", status="queued")
    executions = services.require_executions()
    executions.start("job-4", "{}")
    executions.start("not-a-job", "{}")
    views, following = list_jobs(10, None, services)
    assert [v.job_id for v in views] == ["job-4"]
    assert views[0] == get_job("job-4", services)
    assert following is None
    with pytest.raises(PageTokenInvalid):
        list_jobs(10, "not-a-token", services)
