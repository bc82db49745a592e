"""The job store: one S3 bucket, one prefix per job.

Layout (``jobs/{id}/``)::

    request.json          the validated request (written once, by the submit path)
    manifest.json         progress and the state the next chunk needs (constant size)
    chunks/{n:06d}.json   each chunk: text, reasoning, finish reason, usage, timing
    drafts/{n:06d}.json   the chunk in flight, checkpointed while it streams (``draft.py``);
                          deleted when chunk n commits
    billed/{n:06d}-{r}.json  each reply the provider billed while chunk n was asked (``billed.py``)
    output.md             the answer so far (raw while running, final after finalize)
    reasoning.md          the reasoning so far (only when the model reasons)
    result.json           the final result (written by finalize)

and ``styles/{sha256(base URL, model)}.json``: the prefill style learned for a provider's model
(``prefill.LearnedStyle``), read by a job's first chunk that sends a prefill, written when learned.

Durability protocol for one chunk (``manifest.json`` is the commit point)::

    read manifest (+ETag) -> read output.md/reasoning.md -> call the model
    -> PUT chunks/n (If-None-Match) -> PUT manifest (If-Match: ETag) -> PUT output.md/reasoning.md

Attempts of one chunk are fenced: each record names the manifest version it continues, the first
attempt to store ``chunks/n`` for that version wins, and any other attempt (a retry, or a stale
attempt still running) commits that very record or nothing. Only a committed chunk reaches
output.md, and text past the
committed length is never read, so nothing is doubled or dropped at a seam. A crash between the
commit and the text write leaves output.md short; the next reader rebuilds it from the chunks.
A crash at any point loses at most the text of the chunk in flight since its last draft
checkpoint (``draft.py``): the next attempt commits the draft written against its manifest
version. The number of S3 requests per chunk does not depend on how many chunks came before: 4 GETs
(request, manifest, output.md, the draft) and 3 PUTs, plus one PUT per draft checkpoint, one per
billed reply (``billed.py``) and one DELETE when the chunk wrote drafts.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from .draft import Draft
from .errors import JobNotFound, JobStateInvalid, ManifestConflict
from .models import ChunkRecord, JobResult, Manifest, utcnow
from .objects import JSON, Objects, WriteConflict
from .prefill import LearnedStyle, style_digest
from .request import GenerationRequest
from .results import MARKDOWN, Results

logger = logging.getLogger(__name__)

DRAFT_READ_ATTEMPTS = 3

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any


class JobKeys:
    """Object keys of one job."""

    def __init__(self, job_id: str):
        self.job_id = job_id
        self.prefix = f"jobs/{job_id}/"
        self.request = self.prefix + "request.json"
        self.manifest = self.prefix + "manifest.json"
        self.output = self.prefix + "output.md"
        self.reasoning = self.prefix + "reasoning.md"
        self.result = self.prefix + "result.json"

    def chunk(self, index: int) -> str:
        return f"{self.prefix}chunks/{index:06d}.json"

    def draft(self, index: int) -> str:
        return f"{self.prefix}drafts/{index:06d}.json"


REQUESTS_PREFIX = "requests/"
STYLES_PREFIX = "styles/"


def style_key(base_url: str, model: str) -> str:
    return f"{STYLES_PREFIX}{style_digest(base_url, model)}.json"


class JobStore:
    """Typed access to the jobs bucket: every key of a job is built here (``JobKeys``), the reads and
    writes go through the one object layer (``objects.py``), the drop folder's answers through
    ``results.py``."""

    def __init__(self, s3: S3Client, bucket: str):
        self.objects = Objects(s3, bucket)
        self.results = Results(self.objects)

    @property
    def s3(self) -> S3Client:
        return self.objects.s3

    @property
    def bucket(self) -> str:
        return self.objects.bucket

    def _put_json(self, key: str, model: BaseModel, **kwargs: Any) -> str:
        return self.objects.put(key, model.model_dump_json(indent=1).encode(), JSON, **kwargs)

    # ---- request ----------------------------------------------------------------------------

    def put_request(self, job_id: str, request: GenerationRequest, *, only_if_new: bool = False) -> bool:
        """Write the request; with ``only_if_new`` returns False when it already existed."""
        body = request.model_dump_json(indent=1, exclude_none=True).encode()
        if only_if_new:
            return self.objects.put_if_new(JobKeys(job_id).request, body, JSON)
        self.objects.put(JobKeys(job_id).request, body, JSON)
        return True

    def get_request(self, job_id: str) -> GenerationRequest:
        got = self.objects.get(JobKeys(job_id).request)
        if got is None:
            raise JobNotFound(f"job {job_id} has no request.json")
        return GenerationRequest.model_validate_json(got[0])

    # ---- manifest ---------------------------------------------------------------------------

    def get_manifest(self, job_id: str) -> tuple[Manifest, str]:
        got = self.objects.get(JobKeys(job_id).manifest)
        if got is None:
            raise JobNotFound(f"job {job_id} has no manifest.json")
        return Manifest.model_validate_json(got[0]), got[1]

    def find_manifest(self, job_id: str) -> Manifest | None:
        got = self.objects.get(JobKeys(job_id).manifest)
        return None if got is None else Manifest.model_validate_json(got[0])

    def put_manifest(
        self, manifest: Manifest, *, if_match: str | None = None, only_if_new: bool = False
    ) -> str:
        manifest.updated_at = utcnow()
        try:
            return self._put_json(
                JobKeys(manifest.job_id).manifest, manifest, if_match=if_match, if_none_match=only_if_new
            )
        except WriteConflict as exc:
            raise ManifestConflict(
                f"job {manifest.job_id}: manifest changed under us (another invocation is running?)"
            ) from exc

    # ---- chunks and running text -------------------------------------------------------------

    def put_chunk(self, chunk: ChunkRecord) -> ChunkRecord:
        """Store a chunk record unless one is there already; returns the record that is stored.

        Attempts of one chunk are fenced: the first to store ``chunks/{n}`` for a manifest version
        wins, and a later (or overlapping, stale) attempt gets that record back instead of
        overwriting it. A record left by an attempt of an older manifest version (never committed:
        a commit moves the job to the next index) is replaced.
        """
        key = JobKeys(chunk.job_id).chunk(chunk.index)
        replace: str | None = None  # the ETag of a stale record to replace
        for _ in range(3):
            try:
                if replace is None:
                    self._put_json(key, chunk, if_none_match=True)
                else:
                    self._put_json(key, chunk, if_match=replace)
                return chunk
            except WriteConflict:
                pass
            got = self.objects.get(key)
            if got is None:
                replace = None
                continue
            stored = ChunkRecord.model_validate_json(got[0])
            if stored.base_etag == chunk.base_etag:
                return stored
            replace = got[1]
        raise JobStateInvalid(f"job {chunk.job_id}: chunk {chunk.index} keeps changing under us")

    def get_chunk(self, job_id: str, index: int) -> ChunkRecord:
        got = self.objects.get(JobKeys(job_id).chunk(index))
        if got is None:
            raise JobStateInvalid(f"job {job_id}: chunk {index} is missing")
        return ChunkRecord.model_validate_json(got[0])

    # ---- drafts: the chunk in flight -------------------------------------------------------------

    def put_draft(self, draft: Draft) -> None:
        self.objects.put(JobKeys(draft.job_id).draft(draft.index), draft.model_dump_json().encode(), JSON)

    def get_draft(self, job_id: str, index: int) -> Draft | None:
        """The draft of chunk ``index``; None when there is none (or it cannot be read: a draft is
        evidence, and an unreadable one is ignored rather than failing the chunk, or a cancel).

        A draft is rewritten while the chunk streams: moto's S3 (the local runtime) can hand a
        reader the buffer of the object a writer is replacing ("I/O operation on closed file", a
        ``ValueError``); the next read gets the new object, so the read is tried again."""
        for _ in range(DRAFT_READ_ATTEMPTS):
            try:
                got = self.objects.get(JobKeys(job_id).draft(index))
            except ValueError:
                continue
            if got is None:
                return None
            try:
                return Draft.model_validate_json(got[0])
            except ValueError:
                return None
        return None

    def delete_draft(self, job_id: str, index: int) -> bool:
        """Delete the draft of chunk ``index`` (superseded by its commit). Best effort, as writing
        it was: a draft left behind is never committed (its manifest version has passed), so a
        failed delete must not fail a chunk that is already committed; False when it failed."""
        try:
            self.objects.delete(JobKeys(job_id).draft(index))
        except (ClientError, BotoCoreError) as exc:
            logger.warning("could not delete the draft of chunk %s of job %s: %r", index, job_id, exc)
            return False
        return True

    def read_running_text(self, manifest: Manifest, *, answer_start: str) -> tuple[str, str]:
        """The committed answer and reasoning so far.

        Text past the committed length is ignored; a text shorter than committed (a crash between
        the manifest commit and the text write) is rebuilt from the chunks (recovery path only).
        """
        keys = JobKeys(manifest.job_id)
        answer = (self.get_text(keys.output) or "") if manifest.answer_chars else ""
        reasoning = (self.get_text(keys.reasoning) or "") if manifest.reasoning_chars else ""
        if len(answer) < manifest.answer_chars or len(reasoning) < manifest.reasoning_chars:
            answer, reasoning = self.assemble(manifest, answer_start=answer_start)
        return answer[: manifest.answer_chars], reasoning[: manifest.reasoning_chars]

    def write_running_text(self, job_id: str, *, answer: str, reasoning: str | None) -> None:
        """The text so far, written after each commit (what GET .../output serves while running)."""
        keys = JobKeys(job_id)
        self.objects.put(keys.output, answer.encode(), MARKDOWN)
        if reasoning is not None:
            self.objects.put(keys.reasoning, reasoning.encode(), MARKDOWN)

    def read_chunks(self, manifest: Manifest) -> list[ChunkRecord]:
        """Every committed chunk, in order (one GET per chunk: finalize and recovery only)."""
        return [self.get_chunk(manifest.job_id, index) for index in range(manifest.chunks)]

    def assemble(self, manifest: Manifest, *, answer_start: str) -> tuple[str, str]:
        """Answer and reasoning from the stored chunks."""
        return assemble_chunks(self.read_chunks(manifest), answer_start=answer_start)

    # ---- learned prefill styles ---------------------------------------------------------------

    def get_learned_style(self, base_url: str, model: str) -> LearnedStyle | None:
        got = self.objects.get(style_key(base_url, model))
        if got is None:
            return None
        try:
            return LearnedStyle.model_validate_json(got[0])
        except ValueError:
            return None  # an unreadable record is learned again

    def put_learned_style(self, learned: LearnedStyle) -> None:
        self._put_json(style_key(learned.base_url, learned.model), learned)

    def delete_learned_style(self, base_url: str, model: str) -> None:
        """Evict a style found wrong (``style_probe.evict_style``)."""
        self.s3.delete_object(Bucket=self.bucket, Key=style_key(base_url, model))

    # ---- final outputs ----------------------------------------------------------------------

    def put_result(self, result: JobResult) -> None:
        self._put_json(JobKeys(result.job_id).result, result)

    def get_result(self, job_id: str) -> JobResult | None:
        got = self.objects.get(JobKeys(job_id).result)
        return None if got is None else JobResult.model_validate_json(got[0])

    def get_text(self, key: str) -> str | None:
        return self.objects.get_text(key)


def assemble_chunks(chunks: list[ChunkRecord], *, answer_start: str) -> tuple[str, str]:
    """The answer (the user's start + every chunk's text) and the reasoning, seam by seam."""
    return answer_start + "".join(c.text for c in chunks), "".join(c.reasoning for c in chunks)
