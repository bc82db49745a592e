"""The batch store: every S3 key of a batch (a sibling of ``job_store.py``, same bucket, same object
layer: ``objects.py``).

Layout::

    batches/{name}.jsonl               the drop folder: an upload here submits a batch
    batch-inputs/{any}.jsonl           a file POST /batches may name by its S3 URI (not watched)
    batch-runs/{id}/batch.json         the batch manifest (status, lines, options; If-Match commits)
    batch-runs/{id}/input.jsonl        the input exactly as validated (written once)
    batch-runs/{id}/items.json         the Distributed Map's item list: a JSON array of
                                       {"job_id", "custom_id", "line"} (ItemReader, InputType JSON)
    batch-runs/{id}/map/               the Distributed Map's ResultWriter prefix
    batch-runs/{id}/output.jsonl       the output, OpenAI Batch output shape, in input order
    batch-runs/{id}/summary.json       the summary (written last: its presence says the output is in place)
    results/{name}.jsonl               the drop folder's output (a copy of output.jsonl)
    results/{name}.batch.json          the drop folder's summary
    results/{name}.batch-error.json    a drop-folder batch that started nothing: every bad line
                                       (``results.py`` builds every results/ key)

The batch's own files live under ``batch-runs/``, not ``batches/{id}/``: the drop folder watches
``batches/``, and an ``output.jsonl`` written there would be taken for a new batch of its own
output. Each line is a normal job under ``jobs/{id}/`` (``job_store.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from ..errors import BatchConflict, JobStateInvalid
from ..models import utcnow
from ..objects import JSON, CappedObject, Objects, WriteConflict
from ..results import JSONL, Results
from .models import BatchItem, BatchManifest, BatchSummary

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef
else:
    S3Client = Any
    CompletedPartTypeDef = dict

BATCH_UPLOADS_PREFIX = "batches/"
BATCH_INPUTS_PREFIX = "batch-inputs/"
BATCH_RUNS_PREFIX = "batch-runs/"
BATCH_UPLOAD_SUFFIX = ".jsonl"
PART_BYTES = 8 * 1024 * 1024  # multipart parts of the output (S3's minimum is 5 MiB)

_ITEMS = TypeAdapter(list[BatchItem])


class BatchKeys:
    def __init__(self, batch_id: str):
        self.batch_id = batch_id
        self.prefix = f"{BATCH_RUNS_PREFIX}{batch_id}/"
        self.manifest = self.prefix + "batch.json"
        self.input = self.prefix + "input.jsonl"
        self.items = self.prefix + "items.json"
        self.map_results = self.prefix + "map"
        self.output = self.prefix + "output.jsonl"
        self.summary = self.prefix + "summary.json"


class BatchStore:
    """Typed access to a batch's objects (``Services.batches``)."""

    def __init__(self, s3: S3Client, bucket: str):
        self.objects = Objects(s3, bucket)
        self.results = Results(self.objects)

    @property
    def bucket(self) -> str:
        return self.objects.bucket

    # ---- the manifest -----------------------------------------------------------------------

    def find_batch(self, batch_id: str) -> tuple[BatchManifest, str] | None:
        got = self.objects.get(BatchKeys(batch_id).manifest)
        return None if got is None else (BatchManifest.model_validate_json(got[0]), got[1])

    def put_batch(
        self, manifest: BatchManifest, *, if_match: str | None = None, only_if_new: bool = False
    ) -> str:
        manifest.updated_at = utcnow()
        body = manifest.model_dump_json(indent=1).encode()
        key = BatchKeys(manifest.batch_id).manifest
        try:
            return self.objects.put(key, body, JSON, if_match=if_match, if_none_match=only_if_new)
        except WriteConflict as exc:
            raise BatchConflict(f"batch {manifest.batch_id}: batch.json changed under us") from exc

    # ---- input and items --------------------------------------------------------------------

    def put_input(self, batch_id: str, data: bytes) -> bool:
        return self.objects.put_if_new(BatchKeys(batch_id).input, data, JSONL)

    def get_input(self, batch_id: str) -> bytes:
        got = self.objects.get(BatchKeys(batch_id).input)
        if got is None:
            raise JobStateInvalid(f"batch {batch_id} has no input.jsonl")
        return got[0]

    def put_items(self, batch_id: str, items: list[BatchItem]) -> None:
        self.objects.put(BatchKeys(batch_id).items, _ITEMS.dump_json(items), JSON)

    def get_items(self, batch_id: str) -> list[BatchItem]:
        got = self.objects.get(BatchKeys(batch_id).items)
        if got is None:
            raise JobStateInvalid(f"batch {batch_id} has no items.json")
        return _ITEMS.validate_json(got[0])

    def read_upload(self, key: str, cap: int) -> CappedObject | None:
        """An uploaded batch (``batches/``, ``batch-inputs/``) read up to ``cap`` bytes; None: gone."""
        return self.objects.read_capped((key,), cap)

    # ---- outputs ----------------------------------------------------------------------------

    def output_writer(self, batch_id: str) -> OutputWriter:
        return OutputWriter(self.objects.s3, self.bucket, BatchKeys(batch_id).output)

    def put_summary(self, summary: BatchSummary) -> None:
        body = summary.model_dump_json(indent=1).encode()
        self.objects.put(BatchKeys(summary.batch_id).summary, body, JSON)

    def get_summary(self, batch_id: str) -> BatchSummary | None:
        got = self.objects.get(BatchKeys(batch_id).summary)
        return None if got is None else BatchSummary.model_validate_json(got[0])

    def get_output(self, batch_id: str) -> bytes | None:
        got = self.objects.get(BatchKeys(batch_id).output)
        return None if got is None else got[0]

    def presigned_output_url(self, batch_id: str, *, expires_in: int) -> str:
        return self.objects.presign(BatchKeys(batch_id).output, content_type=JSONL, expires_in=expires_in)


class OutputWriter:
    """``output.jsonl`` written in order, in bounded memory: one PUT when small, else a multipart upload."""

    def __init__(self, s3: S3Client, bucket: str, key: str):
        self.s3 = s3
        self.bucket = bucket
        self.key = key
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self.bytes_written = 0

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.bytes_written += len(data)
        if len(self._buffer) >= PART_BYTES:
            self._flush_part()

    def _flush_part(self) -> None:
        if self._upload_id is None:
            created = self.s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType="application/jsonl"
            )
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        resp = self.s3.upload_part(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=bytes(self._buffer),
        )
        self._parts.append({"PartNumber": number, "ETag": resp["ETag"]})
        self._buffer.clear()

    def close(self) -> None:
        if self._upload_id is None:
            self.s3.put_object(
                Bucket=self.bucket, Key=self.key, Body=bytes(self._buffer), ContentType="application/jsonl"
            )
            return
        if self._buffer:
            self._flush_part()
        self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
        )

    def abort(self) -> None:
        if self._upload_id is not None:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
