"""Reading a job's committed output from a character offset: the text itself, or a presigned URL of
``output.md`` when the rest is larger than the inline limit (``GET /generations/{id}/output``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from .job_store import JobKeys
from .models import JobStatus
from .services import Services
from .status import find_job

PRESIGNED_URL_SECONDS = 900
OUTPUT_CONTENT_TYPE = "text/markdown; charset=utf-8"  # what a presigned GET of output.md answers


class DraftSlice(BaseModel):
    """The chunk in flight, not committed yet (``draft.py``): it follows the committed text at
    ``offset`` and is superseded by the commit (which may still differ from it at the seam)."""

    chunk_index: int
    offset: int  # the committed length the draft continues
    text: str | None  # the answer text of the draft (None: larger than the inline limit)
    tokens: int
    updated_at: datetime


class OutputSlice(BaseModel):
    """The output from ``offset`` to ``next_offset``: ``text``, or ``url`` (with ``byte_offset``)."""

    job_id: str
    status: JobStatus
    offset: int
    next_offset: int  # never before ``offset``: an offset past the end gets an empty slice
    complete: bool  # the job has ended and nothing follows ``next_offset``
    text: str | None = None
    url: str | None = None
    expires_in: int | None = None  # seconds the url stays valid
    byte_offset: int | None = None  # the UTF-8 byte offset of ``offset`` in output.md (with url)
    bytes: int  # UTF-8 size of the slice
    draft: DraftSlice | None = None  # while running: the chunk in flight, after the committed end


def read_output(
    job_id: str,
    offset: int,
    services: Services,
    *,
    as_owner: str | None = None,
    include_draft: bool = True,
) -> OutputSlice:
    """The committed output from character ``offset``; ``JobNotFound`` when there is no such job (or
    it is not ``as_owner``'s, see ``status.find_job``). While the job runs, the draft of the chunk in
    flight comes beside it (``include_draft``): it follows the committed end, where every slice ends."""
    store = services.store
    manifest = find_job(job_id, services, as_owner=as_owner)
    key = JobKeys(job_id).output
    # output.md may run ahead of the manifest after a crash: only the committed part is the output
    committed = (store.get_text(key) or "")[: manifest.answer_chars]
    rest = committed[offset:]
    rest_bytes = len(rest.encode("utf-8"))
    next_offset = offset + len(rest)
    page = OutputSlice(
        job_id=job_id,
        status=manifest.status,
        offset=offset,
        next_offset=next_offset,
        complete=manifest.terminal and next_offset >= len(committed),
        bytes=rest_bytes,
    )
    if include_draft and not manifest.terminal:  # every slice runs to the committed end
        page.draft = draft_slice(services, manifest.job_id, manifest.chunks, len(committed))
    if rest_bytes <= services.settings.output_inline_max_bytes:
        page.text = rest
        return page
    page.url = store.objects.presign(key, content_type=OUTPUT_CONTENT_TYPE, expires_in=PRESIGNED_URL_SECONDS)
    page.expires_in = PRESIGNED_URL_SECONDS
    page.byte_offset = len(committed[:offset].encode("utf-8"))
    return page


def draft_slice(services: Services, job_id: str, index: int, offset: int) -> DraftSlice | None:
    draft = services.store.get_draft(job_id, index)
    if draft is None or draft.index != index:
        return None
    inline = len(draft.answer_text.encode("utf-8")) <= services.settings.output_inline_max_bytes
    return DraftSlice(
        chunk_index=index,
        offset=offset,
        text=draft.answer_text if inline else None,
        tokens=draft.tokens,
        updated_at=draft.updated_at,
    )
