"""The S3 drop folder: an object created under ``requests/`` starts a job.

::

    requests/{name}.json          a request in the public format (request.py)
    requests/{name}.txt | .md     the prompt, run with the deployment's defaults
      -> when the job ends (finalize): results/{name}.md and results/{name}.json
      -> a bad request: results/{name}.error.json naming every problem; nothing starts

``{name}`` keeps nested folders: ``requests/essays/tides.md`` answers in ``results/essays/tides.md``.

The jobs belong to the bucket (``Manifest.owner`` is ``s3://{bucket}``): whoever may write
``requests/`` reads ``results/``, and the HTTP API shows these jobs to none of its callers.

Two event shapes are understood: the EventBridge ``Object Created`` event (what the deployed
stack uses: the bucket sends its events to EventBridge and a rule matching ``requests/`` invokes
the function, so the bucket and the function do not depend on each other in CloudFormation) and
S3 notification ``Records`` (an S3 -> Lambda notification, should one be wired instead).

Idempotency (S3 delivers at least once): the job id is derived from the bucket, the key and a
SHA-256 of the bytes read. A duplicate delivery, or the same content uploaded again under the same
key, lands on the same job and starts nothing new; different content is a new job. The ETag is not
used for this because with SSE-KMS (this stack's bucket) it is not a digest of the content, so the
same bytes uploaded twice get different ETags; it is still recorded in the job's source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import unquote_plus

from pydantic import BaseModel

from .errors import Problem, RequestInvalid
from .job_store import REQUESTS_PREFIX
from .models import JobSource
from .objects import CappedObject
from .request import GenerationRequest, parse_request
from .services import MetricsSink, Services
from .submit import submit_job

# extension (lower case) -> how the object's bytes are read
Kind = Literal["request", "prompt"]
REQUEST_KINDS: dict[str, Kind] = {".json": "request", ".txt": "prompt", ".md": "prompt"}

Action = Literal["started", "duplicate", "rejected", "ignored"]


@dataclass(frozen=True)
class CreatedObject:
    """One "object created" notification: where, and the key spellings worth trying."""

    bucket: str
    keys: tuple[str, ...]  # the decoded key first; the key as the event spelled it as a fallback
    etag: str | None = None
    version_id: str | None = None

    @property
    def key(self) -> str:
        return self.keys[0]


class DropOutcome(BaseModel):
    """What one notification did (returned by the function, logged, counted)."""

    key: str
    action: Action
    name: str | None = None
    job_id: str | None = None
    execution_arn: str | None = None
    error_key: str | None = None  # results/{name}.error.json of a rejected request
    problems: list[dict[str, str]] | None = None
    reason: str | None = None  # why it was ignored


def request_name(key: str) -> tuple[str, Kind] | str:
    """``(name, kind)`` for a request key, else the reason the key is not a request."""
    if not key.startswith(REQUESTS_PREFIX):
        return f"not under {REQUESTS_PREFIX}"
    rest = key[len(REQUESTS_PREFIX) :]
    if not rest or rest.endswith("/"):
        return "a folder, not a file"
    suffix = PurePosixPath(rest).suffix
    kind = REQUEST_KINDS.get(suffix.lower())
    if kind is None:
        return f"extension {suffix or '(none)'!r} is not one of {', '.join(sorted(REQUEST_KINDS))}"
    name = rest[: -len(suffix)]
    if not name or name.endswith("/"):
        return "no name before the extension"
    return name, kind


# ---- events ------------------------------------------------------------------------------------


def created_objects(event: Mapping[str, Any]) -> tuple[list[CreatedObject], list[DropOutcome]]:
    """The objects an event announces, and outcomes for the parts that announce none."""
    if "Records" in event:
        return _from_records(event["Records"])
    if event.get("source") == "aws.s3" and isinstance(event.get("detail"), Mapping):
        return _from_eventbridge(event)
    return [], [DropOutcome(key="", action="ignored", reason="not an S3 Object Created event")]


def _from_eventbridge(event: Mapping[str, Any]) -> tuple[list[CreatedObject], list[DropOutcome]]:
    detail = event["detail"]
    obj = detail.get("object") or {}
    key = str(obj.get("key") or "")
    if event.get("detail-type") != "Object Created":
        return [], [DropOutcome(key=key, action="ignored", reason=f"event {event.get('detail-type')!r}")]
    bucket = str((detail.get("bucket") or {}).get("name") or "")
    if not bucket or not key:
        return [], [DropOutcome(key=key, action="ignored", reason="no bucket or key in the event")]
    # EventBridge spells the key as stored; an encoded spelling is tried second, just in case
    return [
        CreatedObject(
            bucket=bucket,
            keys=_spellings(key, unquote_plus(key)),
            etag=_etag(obj.get("etag") or obj.get("eTag")),
            version_id=obj.get("version-id"),
        )
    ], []


def _from_records(records: Any) -> tuple[list[CreatedObject], list[DropOutcome]]:
    objects: list[CreatedObject] = []
    skipped: list[DropOutcome] = []
    for record in records if isinstance(records, list) else []:
        if not isinstance(record, Mapping):
            skipped.append(DropOutcome(key="", action="ignored", reason="a record that is not an object"))
            continue
        s3 = record.get("s3") or {}
        obj = s3.get("object") or {}
        raw_key = str(obj.get("key") or "")
        event_name = str(record.get("eventName") or "")
        if record.get("eventSource") != "aws:s3" or not event_name.removeprefix("s3:").startswith(
            "ObjectCreated:"
        ):
            skipped.append(DropOutcome(key=raw_key, action="ignored", reason=f"event {event_name!r}"))
            continue
        bucket = str((s3.get("bucket") or {}).get("name") or "")
        if not bucket or not raw_key:
            skipped.append(DropOutcome(key=raw_key, action="ignored", reason="no bucket or key in the event"))
            continue
        # S3 notifications URL-encode the key ("red flower.md" arrives as "red+flower.md")
        objects.append(
            CreatedObject(
                bucket=bucket,
                keys=_spellings(unquote_plus(raw_key), raw_key),
                etag=_etag(obj.get("eTag") or obj.get("etag")),
                version_id=obj.get("versionId"),
            )
        )
    if not objects and not skipped:
        skipped.append(DropOutcome(key="", action="ignored", reason="no records"))
    return objects, skipped


def _spellings(*keys: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(keys))


def _etag(value: Any) -> str | None:
    return str(value).strip('"') if value else None


# ---- one object --------------------------------------------------------------------------------


def _parse(read: CappedObject, kind: Kind, cap: int) -> GenerationRequest:
    """The request an object holds, or RequestInvalid naming every problem."""
    if read.data is None:
        raise RequestInvalid([Problem("(body)", f"the object is {read.size} bytes; the limit is {cap}")])
    if not read.data.strip():
        raise RequestInvalid([Problem("(body)", "the file is empty")])
    if kind == "request":
        return parse_request(read.data)
    try:
        text = read.data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequestInvalid([Problem("(body)", f"not UTF-8 text: {exc}")]) from exc
    return parse_request({"prompt": text})


def drop_folder_owner(bucket: str) -> str:
    """The owner of the drop folder's jobs (``Manifest.owner``): the bucket, not a caller of the API."""
    return f"s3://{bucket}"


def idempotency_key(bucket: str, key: str, data: bytes) -> str:
    return f"s3://{bucket}/{key}#sha256={hashlib.sha256(data).hexdigest()}"


def handle_object(obj: CreatedObject, services: Services) -> DropOutcome:
    """Submit the request one object holds, or write its error file. Safe to repeat."""
    store, settings = services.store, services.settings
    if obj.bucket != store.bucket:
        return DropOutcome(
            key=obj.key, action="ignored", reason=f"bucket {obj.bucket!r} is not the jobs bucket"
        )
    named = [(k, request_name(k)) for k in obj.keys]
    candidates = tuple(k for k, n in named if not isinstance(n, str))
    if not candidates:
        reason = named[0][1]
        return DropOutcome(key=obj.key, action="ignored", reason=str(reason))
    cap = settings.api_max_body_bytes
    read = store.objects.read_capped(candidates, cap)
    if read is None:
        return DropOutcome(key=obj.key, action="ignored", reason="the object no longer exists")
    parsed = request_name(read.key)
    assert not isinstance(parsed, str)
    name, kind = parsed

    try:
        request = _parse(read, kind, cap)
        assert read.data is not None
        # the jobs of the drop folder belong to the bucket: whoever may write requests/ reads results/
        job = submit_job(
            request,
            services,
            idempotency_key=idempotency_key(store.bucket, read.key, read.data),
            source=JobSource(kind="s3", key=read.key, name=name, etag=read.etag),
            owner=drop_folder_owner(store.bucket),
        )
    except RequestInvalid as exc:  # a bad request, or one the deployment's limits refuse (its model)
        # the same bad object delivered twice writes the same file again: nothing harmful
        body: dict[str, Any] = {**exc.to_dict(), "key": read.key, "etag": read.etag}
        written = store.results.write_job_error(name, body)
        return DropOutcome(
            key=read.key,
            action="rejected",
            name=name,
            error_key=written,
            problems=[p.to_dict() for p in exc.problems],
        )

    if job.created:
        store.results.delete_job_error(name)
    return DropOutcome(
        key=read.key,
        action="started" if job.created else "duplicate",
        name=name,
        job_id=job.job_id,
        execution_arn=job.execution_arn,
    )


METRIC_NAMES: dict[str, str] = {
    "started": "DropFolderJobsStarted",
    "duplicate": "DropFolderDuplicates",
    "rejected": "DropFolderRequestsRejected",
    "ignored": "DropFolderObjectsIgnored",
}


def handle_event(
    event: Mapping[str, Any], services: Services, *, metrics: MetricsSink | None = None
) -> list[DropOutcome]:
    """Every object an event announces. Unexpected errors propagate (the async invoke retries)."""
    objects, outcomes = created_objects(event)
    for obj in objects:
        outcomes.append(handle_object(obj, services))
    if metrics is not None:
        for outcome in outcomes:
            metrics.add_metric(name=METRIC_NAMES[outcome.action], unit="Count", value=1)
    return outcomes
