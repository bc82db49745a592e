"""The job store: one S3 bucket, one prefix per job.

Layout (``jobs/{id}/``)::

    request.json          the validated request (written once, by the submit path)
    manifest.json         progress and the state the next chunk needs (constant size)
    chunks/{n:06d}.json   each chunk: text, reasoning, finish reason, usage, timing
    drafts/{n:06d}.json   the chunk in flight, checkpointed while it streams (``draft.py``);
                          deleted when chunk n commits
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
(request, manifest, output.md, the draft) and 3 PUTs, plus one PUT per draft checkpoint and one
DELETE when the chunk wrote drafts.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from .draft import Draft
from .errors import JobNotFound, JobStateInvalid, ManifestConflict
from .models import ChunkRecord, JobResult, JobSource, Manifest, utcnow
from .prefill import LearnedStyle, style_digest
from .request import GenerationRequest

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


RESULTS_PREFIX = "results/"


class ResultKeys:
    """Object keys of the drop folder's answer to ``requests/{name}.*``."""

    def __init__(self, name: str):
        self.output = f"{RESULTS_PREFIX}{name}.md"
        self.result = f"{RESULTS_PREFIX}{name}.json"
        self.error = f"{RESULTS_PREFIX}{name}.error.json"


@dataclass(frozen=True)
class CappedObject:
    """An object read up to a size cap (``data`` None: larger than the cap, not read)."""

    key: str
    size: int
    etag: str | None
    data: bytes | None


class JobStore:
    """Typed access to the jobs bucket: every key of it is built here."""

    def __init__(self, s3: S3Client, bucket: str):
        self.s3 = s3
        self.bucket = bucket

    # ---- low level --------------------------------------------------------------------------

    def _get(self, key: str) -> tuple[bytes, str] | None:
        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if is_missing(exc):
                return None
            raise
        return obj["Body"].read(), obj["ETag"]

    def _put(
        self,
        key: str,
        body: bytes,
        content_type: str,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        kwargs: dict[str, Any] = {}
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        resp = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, **kwargs)
        return resp["ETag"]

    def _put_json(self, key: str, model: BaseModel, **kwargs: Any) -> str:
        return self._put(key, model.model_dump_json(indent=1).encode(), "application/json", **kwargs)

    # ---- request ----------------------------------------------------------------------------

    def put_request(self, job_id: str, request: GenerationRequest, *, only_if_new: bool = False) -> bool:
        """Write the request; with ``only_if_new`` returns False when it already existed."""
        body = request.model_dump_json(indent=1, exclude_none=True).encode()
        try:
            self._put(JobKeys(job_id).request, body, "application/json", if_none_match=only_if_new)
        except ClientError as exc:
            if only_if_new and is_precondition_failure(exc):
                return False
            raise
        return True

    def get_request(self, job_id: str) -> GenerationRequest:
        got = self._get(JobKeys(job_id).request)
        if got is None:
            raise JobNotFound(f"job {job_id} has no request.json")
        return GenerationRequest.model_validate_json(got[0])

    # ---- manifest ---------------------------------------------------------------------------

    def get_manifest(self, job_id: str) -> tuple[Manifest, str]:
        got = self._get(JobKeys(job_id).manifest)
        if got is None:
            raise JobNotFound(f"job {job_id} has no manifest.json")
        return Manifest.model_validate_json(got[0]), got[1]

    def find_manifest(self, job_id: str) -> Manifest | None:
        got = self._get(JobKeys(job_id).manifest)
        return None if got is None else Manifest.model_validate_json(got[0])

    def put_manifest(
        self, manifest: Manifest, *, if_match: str | None = None, only_if_new: bool = False
    ) -> str:
        manifest.updated_at = utcnow()
        try:
            return self._put_json(
                JobKeys(manifest.job_id).manifest, manifest, if_match=if_match, if_none_match=only_if_new
            )
        except ClientError as exc:
            if is_precondition_failure(exc):
                raise ManifestConflict(
                    f"job {manifest.job_id}: manifest changed under us (another invocation is running?)"
                ) from exc
            raise

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
            except ClientError as exc:
                if not is_precondition_failure(exc):
                    raise
            got = self._get(key)
            if got is None:
                replace = None
                continue
            stored = ChunkRecord.model_validate_json(got[0])
            if stored.base_etag == chunk.base_etag:
                return stored
            replace = got[1]
        raise JobStateInvalid(f"job {chunk.job_id}: chunk {chunk.index} keeps changing under us")

    def get_chunk(self, job_id: str, index: int) -> ChunkRecord:
        got = self._get(JobKeys(job_id).chunk(index))
        if got is None:
            raise JobStateInvalid(f"job {job_id}: chunk {index} is missing")
        return ChunkRecord.model_validate_json(got[0])

    # ---- drafts: the chunk in flight -------------------------------------------------------------

    def put_draft(self, draft: Draft) -> None:
        self._put(
            JobKeys(draft.job_id).draft(draft.index), draft.model_dump_json().encode(), "application/json"
        )

    def get_draft(self, job_id: str, index: int) -> Draft | None:
        """The draft of chunk ``index``; None when there is none (or it cannot be read: a draft is
        evidence, and an unreadable one is ignored rather than failing the chunk, or a cancel).

        A draft is rewritten while the chunk streams: moto's S3 (the local runtime) can hand a
        reader the buffer of the object a writer is replacing ("I/O operation on closed file", a
        ``ValueError``); the next read gets the new object, so the read is tried again."""
        for _ in range(DRAFT_READ_ATTEMPTS):
            try:
                got = self._get(JobKeys(job_id).draft(index))
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
            self.s3.delete_object(Bucket=self.bucket, Key=JobKeys(job_id).draft(index))
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
        self._put(keys.output, answer.encode(), "text/markdown; charset=utf-8")
        if reasoning is not None:
            self._put(keys.reasoning, reasoning.encode(), "text/markdown; charset=utf-8")

    def read_chunks(self, manifest: Manifest) -> list[ChunkRecord]:
        """Every committed chunk, in order (one GET per chunk: finalize and recovery only)."""
        return [self.get_chunk(manifest.job_id, index) for index in range(manifest.chunks)]

    def assemble(self, manifest: Manifest, *, answer_start: str) -> tuple[str, str]:
        """Answer and reasoning from the stored chunks."""
        return assemble_chunks(self.read_chunks(manifest), answer_start=answer_start)

    # ---- learned prefill styles ---------------------------------------------------------------

    def get_learned_style(self, base_url: str, model: str) -> LearnedStyle | None:
        got = self._get(style_key(base_url, model))
        if got is None:
            return None
        try:
            return LearnedStyle.model_validate_json(got[0])
        except ValueError:
            return None  # an unreadable record is learned again

    def put_learned_style(self, learned: LearnedStyle) -> None:
        self._put_json(style_key(learned.base_url, learned.model), learned)

    # ---- final outputs ----------------------------------------------------------------------

    def put_result(self, result: JobResult) -> None:
        self._put_json(JobKeys(result.job_id).result, result)

    def get_result(self, job_id: str) -> JobResult | None:
        got = self._get(JobKeys(job_id).result)
        return None if got is None else JobResult.model_validate_json(got[0])

    def write_source_results(self, source: JobSource, *, answer: str, result: JobResult) -> None:
        """The drop folder's answer: ``results/{name}.md`` and ``results/{name}.json``."""
        keys = ResultKeys(source.name)
        self._put(keys.output, answer.encode(), "text/markdown; charset=utf-8")
        self._put_json(keys.result, result)

    def write_source_error(self, name: str, body: dict[str, Any]) -> str:
        """``results/{name}.error.json``: every problem of a request that started nothing."""
        key = ResultKeys(name).error
        self._put(key, json.dumps(body, indent=1).encode(), "application/json")
        return key

    def delete_source_error(self, name: str) -> None:
        """An earlier, bad upload under this name left an error file: it no longer applies."""
        self.s3.delete_object(Bucket=self.bucket, Key=ResultKeys(name).error)

    def read_capped(self, keys: tuple[str, ...], cap: int) -> CappedObject | None:
        """The first of ``keys`` that exists, reading at most ``cap`` bytes; None when none exists."""
        for key in keys:
            try:
                obj = self.s3.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if is_missing(exc):
                    continue
                raise
            body = obj["Body"]
            try:
                size = int(obj.get("ContentLength", 0))
                data = body.read(cap + 1) if size <= cap else None
            finally:
                body.close()
            if data is not None and len(data) > cap:  # ContentLength understated: still capped
                size, data = len(data), None
            etag = obj.get("ETag")
            return CappedObject(key=key, size=size, etag=str(etag).strip('"') if etag else None, data=data)
        return None

    def presigned_url(self, key: str, *, content_type: str, expires_in: int) -> str:
        """A presigned GET of one of the bucket's objects."""
        return self.s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key, "ResponseContentType": content_type},
            ExpiresIn=expires_in,
        )

    def get_text(self, key: str) -> str | None:
        got = self._get(key)
        return None if got is None else got[0].decode("utf-8")


def is_missing(exc: ClientError) -> bool:
    """A GET of a key that is not there (NoSuchKey; 404 for a HEAD)."""
    return exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404")


def is_precondition_failure(exc: ClientError) -> bool:
    """A conditional write (If-Match / If-None-Match) that lost."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("PreconditionFailed", "ConditionalRequestConflict", "412") or status in (409, 412)


def assemble_chunks(chunks: list[ChunkRecord], *, answer_start: str) -> tuple[str, str]:
    """The answer (the user's start + every chunk's text) and the reasoning, seam by seam."""
    return answer_start + "".join(c.text for c in chunks), "".join(c.reasoning for c in chunks)
