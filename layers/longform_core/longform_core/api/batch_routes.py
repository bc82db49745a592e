"""The batch routes: HTTP in, one use-case call (``batch/``), HTTP out.

::

    POST   /batches              submit a batch: the JSONL as the body, or {"input_uri": "s3://..."}
    GET    /batches              the most recent batches, newest first, paginated
    GET    /batches/{batch_id}   counts by status and tokens so far (while it runs too)
    DELETE /batches/{batch_id}   cancel: stop the map and every running line, keep what each generated
"""

import json
from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, Field

from ..batch.cancel import cancel_batch
from ..batch.models import BATCH_ID_PATTERN, BatchSource, BatchStatus
from ..batch.status import BatchView, get_batch, list_batches, output_url
from ..batch.submit import read_input_uri, submit_batch
from ..errors import Problem, RequestInvalid
from .errors import BatchAlreadyFinished
from .route_helpers import IDEMPOTENCY_KEY_MAX, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, RouteHelpers
from .schemas import JSON, error_responses

logger = Logger(child=True)
batch_router = APIGatewayRouter()  # type: ignore[no-untyped-call]  # Powertools' __init__ has no annotations
http = RouteHelpers(batch_router)

OUTPUT_URL_SECONDS = 3600
BODY_REQUIRED = 'required: the batch as JSONL, or {"input_uri": "s3://..."}'
MAX_CONCURRENCY_LIMIT = 10_000


class BatchLinks(BaseModel):
    self_: str = Field(alias="self", description="GET: counts by status and progress")
    cancel: str = Field(description="DELETE: cancel the batch")


class BatchAccepted(BaseModel):
    """``POST /batches``: the batch was accepted (or, with the same key or file, found)."""

    batch_id: str
    status: BatchStatus
    lines: int
    max_concurrency: int
    links: BatchLinks


class BatchReference(BaseModel):
    """``POST /batches`` with a JSON object instead of JSONL: a file already in the jobs bucket."""

    input_uri: str = Field(description="s3://{jobs bucket}/batch-inputs/{name}.jsonl")
    max_concurrency: int | None = Field(default=None, ge=1, le=MAX_CONCURRENCY_LIMIT)


class BatchStatusView(BatchView):
    output_url: str | None = Field(
        default=None, description="presigned GET of output.jsonl once the batch has ended (1 hour)"
    )


class BatchList(BaseModel):
    items: list[BatchView]
    next_token: str | None = Field(default=None, description="pass as `next_token` for the next page")


BatchIdPath = Annotated[
    str, Path(min_length=42, max_length=42, pattern=BATCH_ID_PATTERN, description="the batch id")
]


def _links(batch_id: str) -> BatchLinks:
    base = f"{http.base_path()}/batches/{batch_id}"
    return BatchLinks.model_validate({"self": base, "cancel": base})


def _reference(body: bytes) -> BatchReference | None:
    """The body as a reference to a file in the bucket, when it is one (else it is the JSONL itself)."""
    stripped = body.strip()
    if not stripped.startswith(b"{") or b"\n" in stripped:
        return None
    try:
        data = json.loads(stripped)
    except ValueError:
        return None
    if not isinstance(data, dict) or "input_uri" not in data:
        return None
    try:
        return BatchReference.model_validate(data)
    except ValueError as exc:
        raise RequestInvalid([Problem("input_uri", str(exc).splitlines()[0])]) from exc


@batch_router.post(
    "/batches",
    operation_id="createBatch",
    summary="Start a batch of long generations",
    description=(
        "The body is the batch as JSONL, one request per line (the OpenAI Batch input shape, "
        '`{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body": {...}}`, whose body may '
        'carry any longform request field; or `{"custom_id", "prompt"}`), up to the API\'s body limit; '
        'or a JSON object `{"input_uri": "s3://{bucket}/batch-inputs/{name}.jsonl"}` naming a larger file '
        "already in the jobs bucket. Every line is validated first: a bad batch is a 400 naming each bad "
        "line by its number and field, and nothing starts. Each line becomes a normal job, run by the "
        "batch workflow's Distributed Map at most `max_concurrency` at once. With an `Idempotency-Key` "
        "(or the same file and options again) nothing new starts: 202 with the same batch and "
        "`Idempotent-Replayed: true`."
    ),
    tags=["batches"],
    responses={
        202: {
            "description": "Accepted: the batch id, its status and links; `Location` names the batch.",
            "content": {JSON: {"model": BatchAccepted}},
        },
        **error_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.CONFLICT, HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
    },
)
def create_batch(
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", min_length=1, max_length=IDEMPOTENCY_KEY_MAX),
    ] = None,
    max_concurrency: Annotated[
        int | None,
        Query(ge=1, le=MAX_CONCURRENCY_LIMIT, description="lines at once (at most BatchMaxConcurrency)"),
    ] = None,
) -> Response[BatchAccepted]:
    services = http.services()
    body = http.request_body(services.settings.api_max_body_bytes, BODY_REQUIRED)
    ref = _reference(body)
    source = BatchSource(kind="api")
    if ref is not None:
        body, key = read_input_uri(ref.input_uri, services)
        source = BatchSource(kind="api", key=key)
        max_concurrency = ref.max_concurrency or max_concurrency
    batch = submit_batch(
        body,
        services,
        idempotency_key=idempotency_key,
        owner=http.owner(),
        source=source,
        max_concurrency=max_concurrency,
    )
    links = _links(batch.batch_id)
    headers = {"Location": links.self_}
    if batch.created:
        logger.info("batch submitted", extra={"batch_id": batch.batch_id, "lines": batch.lines})
        http.metric("BatchesSubmitted")
    else:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        status_code=HTTPStatus.ACCEPTED.value,
        content_type=JSON,
        body=BatchAccepted(
            batch_id=batch.batch_id,
            status=batch.status,
            lines=batch.lines,
            max_concurrency=batch.max_concurrency,
            links=links,
        ),
        headers=headers,
    )


@batch_router.get(
    "/batches",
    operation_id="listBatches",
    summary="List the most recent batches",
    description="The caller's batches, newest first, without line counts (GET one batch for those).",
    tags=["batches"],
    responses={
        200: {"description": "A page of batches", "content": {JSON: {"model": BatchList}}},
        **error_responses(HTTPStatus.BAD_REQUEST),
    },
)
def list_batches_route(
    limit: Annotated[
        int, Query(ge=1, le=LIST_LIMIT_MAX, description="batches per page")
    ] = LIST_LIMIT_DEFAULT,
    next_token: Annotated[str | None, Query(min_length=1, max_length=4096)] = None,
) -> BatchList:
    views, following = list_batches(limit, next_token, http.services(), as_owner=http.owner())
    return BatchList(items=views, next_token=following)


@batch_router.get(
    "/batches/<batch_id>",
    operation_id="getBatch",
    summary="Status and progress of a batch",
    description=(
        "Lines by status and tokens so far, also while the batch runs; once it has ended, a presigned "
        "URL of its output.jsonl. Another caller's batch is a 404."
    ),
    tags=["batches"],
    responses={
        200: {
            "description": "The batch's status and progress",
            "content": {JSON: {"model": BatchStatusView}},
        },
        **error_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND),
    },
)
def get_batch_route(batch_id: BatchIdPath) -> BatchStatusView:
    services = http.services()
    view = get_batch(batch_id, services, as_owner=http.owner())
    url = output_url(view, services, expires_in=OUTPUT_URL_SECONDS)
    return BatchStatusView(**view.model_dump(), output_url=url)


@batch_router.delete(
    "/batches/<batch_id>",
    operation_id="cancelBatch",
    summary="Cancel a batch",
    description=(
        "Stops the map and every running line, keeping what each generated (their output and partial "
        "text); lines not started are reported cancelled; the output is written. 200 with the batch "
        "(again 200 when it was already cancelled); a batch that already ended otherwise is a 409."
    ),
    tags=["batches"],
    responses={
        200: {"description": "Cancelled: the batch's final view", "content": {JSON: {"model": BatchView}}},
        **error_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT),
    },
)
def cancel_batch_route(batch_id: BatchIdPath) -> BatchView:
    view, cancelled = cancel_batch(batch_id, http.services(), as_owner=http.owner())
    if cancelled:
        http.metric("BatchesCancelled")
    elif view.status != "cancelled":
        raise BatchAlreadyFinished(batch_id, view.status)
    return view
