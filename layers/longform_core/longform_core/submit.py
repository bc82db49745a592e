"""The one submit path shared by every entry point (CLI, HTTP API, S3 drop folder).

validate -> write ``request.json`` (only if new) and the initial manifest -> ``StartExecution``
with a deterministic name. Submitting the same thing twice (same idempotency key, or the same S3
object version) starts nothing new; the same key with a different body is a conflict.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from typing import Any

from pydantic import BaseModel

from .config import Settings
from .errors import IdempotencyConflict, JobStateInvalid, Problem, RequestInvalid
from .infra_cost import record_submit
from .models import JobSource, Manifest
from .request import GenerationRequest, parse_request
from .services import Services


class SubmittedJob(BaseModel):
    job_id: str
    execution_arn: str
    created: bool  # False when this submission was a duplicate of an earlier one
    model: str


def job_id_for(idempotency_key: str | None, owner: str | None = None) -> str:
    """A job id (also the execution name, at most 80 characters): deterministic for a key, random
    otherwise. The key is the owner's: two owners using the same key get two jobs."""
    if idempotency_key:
        material = idempotency_key if owner is None else json.dumps([owner, idempotency_key])
        return "k-" + hashlib.sha256(material.encode()).hexdigest()[:40]
    return uuid.uuid4().hex


def apply_deployment_limits(request: GenerationRequest, settings: Settings) -> GenerationRequest:
    """The request as this deployment runs it: its model must be one of ``AllowedModels`` (the
    default model always is), and without a ``max_cost_usd`` of its own it gets ``DefaultMaxCostUsd``.
    ``RequestInvalid`` on ``model`` naming the allowed models otherwise."""
    model = request.model or settings.default_model
    allowed = dict.fromkeys((*settings.allowed_models, settings.default_model))
    if settings.allowed_models and model not in allowed:
        raise RequestInvalid(
            [Problem("model", f"{model!r} is not allowed here; allowed: {', '.join(allowed)}")]
        )
    if request.max_cost_usd is None and settings.default_max_cost_usd is not None:
        # stored in request.json, so the chunks' budget check (continuation.py) applies it
        return request.model_copy(update={"max_cost_usd": settings.default_max_cost_usd})
    return request


def prepare_job(
    request: GenerationRequest,
    job_id: str,
    services: Services,
    *,
    source: JobSource | None = None,
    owner: str | None = None,
    batch_id: str | None = None,
) -> tuple[Manifest | None, bool]:
    """Write the job's ``request.json`` (only if new) and its initial manifest; start nothing.

    Returns the manifest that already existed (None for a new job) and whether this call wrote the
    request. The same id with a different request is an ``IdempotencyConflict``. The batch split
    (``batch/split.py``) prepares every line this way; the line's execution is then started by the batch
    workflow's Distributed Map, under the same deterministic name.
    """
    store, settings = services.store, services.settings
    model = request.model or settings.default_model
    executions = services.executions
    execution_arn = executions.arn_for(job_id) if executions is not None else None
    created = store.put_request(job_id, request, only_if_new=True)
    if not created:
        existing = store.get_request(job_id)
        if existing.fingerprint() != request.fingerprint():
            raise IdempotencyConflict(
                f"idempotency key already used for job {job_id} with a different request"
            )
    existing_manifest = store.find_manifest(job_id)
    if existing_manifest is None:
        manifest = Manifest(
            job_id=job_id,
            model=model,
            execution_arn=execution_arn,
            source=source,
            owner=owner,
            batch_id=batch_id,
            reasoning_phase="answer" if request.answer_start() else "start",
        )
        record_submit(manifest.infra)
        with contextlib.suppress(JobStateInvalid):  # a concurrent duplicate wrote it first
            store.put_manifest(manifest, only_if_new=True)
    return existing_manifest, created


def submit_job(
    raw: Any,
    services: Services,
    *,
    idempotency_key: str | None = None,
    source: JobSource | None = None,
    owner: str | None = None,
) -> SubmittedJob:
    """``owner``: who the job belongs to (``Manifest.owner``); it namespaces ``idempotency_key``."""
    settings = services.settings
    executions = services.require_executions()
    request = raw if isinstance(raw, GenerationRequest) else parse_request(raw)
    request = apply_deployment_limits(request, settings)
    job_id = job_id_for(idempotency_key, owner)
    model = request.model or settings.default_model
    execution_arn = executions.arn_for(job_id)

    existing_manifest, created = prepare_job(request, job_id, services, source=source, owner=owner)
    if existing_manifest is not None and existing_manifest.terminal:
        # a late duplicate of a finished job (an Idempotency-Key replayed, an S3 event delivered
        # again): Step Functions reuses an execution name 90 days after the execution closed, and
        # starting it again would rewrite a finished job's records as a failure. It is returned as is.
        return SubmittedJob(
            job_id=job_id,
            execution_arn=existing_manifest.execution_arn or execution_arn,
            created=False,
            model=existing_manifest.model,
        )

    execution_arn, started = executions.start(job_id, json.dumps({"job_id": job_id}))
    # `created` stays "this call wrote the request": a duplicate StartExecution of a running
    # execution succeeds on AWS, so only an already existing name says "duplicate"
    return SubmittedJob(job_id=job_id, execution_arn=execution_arn, created=created and started, model=model)
