"""The routes: HTTP in, one use-case call, HTTP out. The work is in ``submit``, ``status``,
``output`` and ``cancel``; what goes wrong is raised and answered by ``errors.py``."""

import base64
import binascii
import contextlib
from collections.abc import Mapping
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.logging.exceptions import OrphanedChildLoggerError

from ..cancel import cancel_job
from ..errors import Problem, RequestInvalid
from ..models import JOB_ID_PATTERN
from ..output import OUTPUT_CONTENT_TYPE, OutputSlice, read_output
from ..request import parse_request
from ..runtime import get_services
from ..services import Services
from ..status import JobView, current_status, get_job, list_jobs
from ..submit import submit_job
from .errors import JobAlreadyFinished, PayloadTooLarge
from .schemas import JSON, JobList, Links, OutputPage, SubmitAccepted, error_responses

logger = Logger(child=True)

IDEMPOTENCY_KEY_MAX = 255
LIST_LIMIT_DEFAULT = 20
LIST_LIMIT_MAX = 100

router = APIGatewayRouter()  # type: ignore[no-untyped-call]  # Powertools' __init__ has no annotations


# ---- HTTP in and out -------------------------------------------------------------------------------


def _services() -> Services:
    """The services ``handle`` was given, else the Lambda container's (the resolver's context,
    which every included router shares: the batch routes use these helpers too)."""
    services: Services | None = router.context.get("services")
    return services if services is not None else get_services()


def _metric(name: str) -> None:
    metrics = router.context.get("metrics")
    if metrics is not None:
        metrics.add_metric(name=name, unit="Count", value=1)


def _log_job(job_id: str) -> None:
    """The job id on every log line of this request (the handler's Logger clears it per request)."""
    with contextlib.suppress(OrphanedChildLoggerError):  # no parent Logger: served without the handler
        logger.append_keys(job_id=job_id)


def _base_path() -> str:
    """The stage prefix when the client called the execute-api endpoint (its URLs include the stage)."""
    ctx = router.current_event.request_context
    domain = ctx.domain_name or router.current_event.headers.get("host") or ""
    stage = ctx.stage
    if stage and stage != "$default" and ".execute-api." in domain:
        return f"/{stage}"
    return ""


def caller_owner(identity: Mapping[str, Any] | None, owner_identity: str) -> str:
    """Who the caller is, as the owner of the jobs it submits (``Manifest.owner``).

    From API Gateway's request context: the API key's id when the API uses keys
    (``ApiAuth=API_KEY``), else the IAM principal that signed the request (``userArn``, else
    ``caller``). A request with neither only reaches the function where nothing authenticates it
    (``longform serve`` on loopback, whose requests all come from 127.0.0.1): its source address.
    """
    identity = identity or {}
    if owner_identity == "API_KEY" and identity.get("apiKeyId"):
        return f"apikey:{identity['apiKeyId']}"
    for field in ("userArn", "caller"):
        if identity.get(field):
            return f"iam:{identity[field]}"
    if identity.get("sourceIp"):
        return f"ip:{identity['sourceIp']}"
    return "anonymous"


def _owner() -> str:
    """The owner of this request's caller: the only one whose jobs it sees."""
    context = router.current_event.raw_event.get("requestContext") or {}
    return caller_owner(context.get("identity"), _services().settings.owner_identity)


def _links(job_id: str) -> Links:
    base = f"{_base_path()}/generations/{job_id}"
    return Links(self_=base, output=f"{base}/output", cancel=base)


def _request_body(limit: int, required: str = "required: a JSON request with messages or prompt") -> bytes:
    """The raw body (base64 decoded), at most ``limit`` bytes and not blank (else ``required``)."""
    event = router.current_event
    raw = event.body or ""
    if event.is_base64_encoded:
        try:
            body = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RequestInvalid([Problem("(body)", "not valid base64")]) from exc
    else:
        body = raw.encode("utf-8")
    if len(body) > limit:
        raise PayloadTooLarge(len(body), limit)
    if not body.strip():
        raise RequestInvalid([Problem("(body)", required)])
    return body


def _wants_markdown() -> bool:
    headers = router.current_event.headers
    accept = (headers.get("accept") or headers.get("Accept") or "").lower()
    return "text/markdown" in accept and JSON not in accept


def _markdown(page: OutputSlice) -> Response[OutputPage | str]:
    """``Accept: text/markdown``: the text itself, or a 303 to the presigned URL."""
    headers = {
        "X-Next-Offset": str(page.next_offset),
        "X-Job-Status": page.status,
        "X-Output-Complete": str(page.complete).lower(),
    }
    if page.url is not None:
        headers["Location"] = page.url
        return Response(status_code=HTTPStatus.SEE_OTHER.value, body="", headers=headers)
    return Response(status_code=200, content_type=OUTPUT_CONTENT_TYPE, body=page.text, headers=headers)


JobIdPath = Annotated[
    str,
    Path(min_length=1, max_length=80, pattern=JOB_ID_PATTERN, description="the job id (the execution name)"),
]


# ---- the routes ------------------------------------------------------------------------------------


@router.post(
    "/generations",
    operation_id="createGeneration",
    summary="Start a generation job",
    description=(
        "Validates the request (every problem is named) and starts the workflow. "
        "With an `Idempotency-Key` header a repeated POST starts nothing new and answers 202 with the "
        "same job (its current status) and `Idempotent-Replayed: true`; the same key with a different "
        "body is a 409. Keys are the caller's own: another caller's same key is another job."
    ),
    tags=["generations"],
    responses={
        202: {
            "description": "Accepted: the job id, its status and links; `Location` names the job.",
            "headers": {
                "Location": {"description": "the job's URL path", "schema": {"type": "string"}},
                "Idempotent-Replayed": {
                    "description": "`true` when a repeated Idempotency-Key found an earlier job",
                    "schema": {"type": "string"},
                },
            },
            "content": {JSON: {"model": SubmitAccepted}},
        },
        **error_responses(
            HTTPStatus.BAD_REQUEST,
            HTTPStatus.CONFLICT,
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        ),
    },
)
def create_generation(
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=IDEMPOTENCY_KEY_MAX,
            description="makes a repeated POST return the same job instead of starting another",
        ),
    ] = None,
) -> Response[SubmitAccepted]:
    services = _services()
    request = parse_request(_request_body(services.settings.api_max_body_bytes))
    job = submit_job(request, services, idempotency_key=idempotency_key, owner=_owner())
    _log_job(job.job_id)
    status = current_status(job.job_id, services)
    links = _links(job.job_id)
    headers = {"Location": links.self_}
    if job.created:
        logger.info("job submitted", extra={"model": job.model, "idempotent": idempotency_key is not None})
        _metric("JobsSubmitted")
    else:
        headers["Idempotent-Replayed"] = "true"
        logger.info("idempotent replay", extra={"status": status})
    return Response(
        status_code=HTTPStatus.ACCEPTED.value,
        content_type=JSON,
        body=SubmitAccepted(job_id=job.job_id, status=status, model=job.model, links=links),
        headers=headers,
    )


@router.get(
    "/generations",
    operation_id="listGenerations",
    summary="List the most recent jobs",
    description=(
        "The caller's jobs, newest first (the workflow's executions), one view per job; paginate with "
        "next_token. A page holds the caller's jobs among `limit` executions: it may hold fewer (even "
        "none) while `next_token` says more follow."
    ),
    tags=["generations"],
    responses={
        200: {"description": "A page of jobs", "content": {JSON: {"model": JobList}}},
        **error_responses(HTTPStatus.BAD_REQUEST),
    },
)
def list_generations(
    limit: Annotated[int, Query(ge=1, le=LIST_LIMIT_MAX, description="jobs per page")] = LIST_LIMIT_DEFAULT,
    next_token: Annotated[
        str | None, Query(min_length=1, max_length=4096, description="from the previous page")
    ] = None,
) -> JobList:
    views, following = list_jobs(limit, next_token, _services(), as_owner=_owner())
    return JobList(items=views, next_token=following)


@router.get(
    "/generations/<job_id>",
    operation_id="getGeneration",
    summary="Status and progress of a job",
    description="Readable at any time, also while the job runs. Another caller's job is a 404.",
    tags=["generations"],
    responses={
        200: {"description": "The job's status and progress", "content": {JSON: {"model": JobView}}},
        **error_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND),
    },
)
def get_generation(job_id: JobIdPath) -> JobView:
    _log_job(job_id)
    return get_job(job_id, _services(), as_owner=_owner())


@router.get(
    "/generations/<job_id>/output",
    operation_id="getGenerationOutput",
    summary="The text so far",
    description=(
        "The answer from character `offset` (also while the job runs; tail it by passing `next_offset` "
        "back). When the rest is larger than the inline limit the answer carries a presigned S3 URL "
        "instead of the text. With `Accept: text/markdown` the text itself is the body (headers "
        "`X-Next-Offset`, `X-Job-Status`, `X-Output-Complete`), or a 303 to the presigned URL."
    ),
    tags=["generations"],
    responses={
        200: {
            "description": "The text from offset (or a presigned URL)",
            "content": {JSON: {"model": OutputPage}, "text/markdown": {"schema": {"type": "string"}}},
        },
        303: {
            "description": "`Accept: text/markdown` and the rest is large: `Location` is a presigned URL",
            "headers": {"Location": {"description": "presigned S3 GET URL", "schema": {"type": "string"}}},
        },
        **error_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND),
    },
)
def get_output(
    job_id: JobIdPath,
    offset: Annotated[int, Query(ge=0, le=2**53, description="character offset to start at")] = 0,
) -> Response[OutputPage | str]:
    _log_job(job_id)
    page = read_output(job_id, offset, _services(), as_owner=_owner())
    if _wants_markdown():
        return _markdown(page)
    return Response(status_code=200, content_type=JSON, body=OutputPage(**page.model_dump()))


@router.delete(
    "/generations/<job_id>",
    operation_id="cancelGeneration",
    summary="Cancel a job",
    description=(
        "Stops the execution, assembles and keeps the partial output (`output.md`, `result.json`) and "
        "answers the job with status `cancelled` (200; again 200 when it was already cancelled). A job "
        "that already ended otherwise is a 409 naming its status."
    ),
    tags=["generations"],
    responses={
        200: {"description": "Cancelled: the job's final view", "content": {JSON: {"model": JobView}}},
        **error_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT),
    },
)
def delete_generation(job_id: JobIdPath) -> JobView:
    _log_job(job_id)
    view, cancelled = cancel_job(job_id, _services(), as_owner=_owner())
    if cancelled:
        logger.info("job cancelled", extra={"chunks": view.progress.chunks})
        _metric("JobsCancelled")
    elif view.status != "cancelled":  # cancelling twice: what the client asked for holds
        raise JobAlreadyFinished(job_id, view.status)
    return view
