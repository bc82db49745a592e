"""The /generations routes: HTTP in, one use-case call, HTTP out. The work is in ``submit``,
``status``, ``output`` and ``cancel``; what goes wrong is raised and answered by ``errors.py``; what
every router shares (services, caller, body, base path, metrics) is ``route_helpers.py``."""

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from ..cancel import cancel_job
from ..models import JOB_ID_PATTERN
from ..output import OUTPUT_CONTENT_TYPE, OutputSlice, read_output
from ..request import parse_request
from ..status import JobView, current_status, get_job, list_jobs
from ..submit import submit_job
from .errors import JobAlreadyFinished
from .route_helpers import IDEMPOTENCY_KEY_MAX, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, RouteHelpers
from .schemas import JSON, JobList, Links, OutputPage, SubmitAccepted, error_responses

logger = Logger(child=True)

router = APIGatewayRouter()  # type: ignore[no-untyped-call]  # Powertools' __init__ has no annotations
http = RouteHelpers(router)


def _log_job(job_id: str) -> None:
    """The job id on every log line of this request."""
    http.log_keys(job_id=job_id)


def _links(job_id: str) -> Links:
    base = f"{http.base_path()}/generations/{job_id}"
    return Links(self_=base, output=f"{base}/output", cancel=base)


def _wants_markdown() -> bool:
    accept = http.header("accept").lower()
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
    services = http.services()
    request = parse_request(http.request_body(services.settings.api_max_body_bytes))
    job = submit_job(request, services, idempotency_key=idempotency_key, owner=http.owner())
    _log_job(job.job_id)
    status = current_status(job.job_id, services)
    links = _links(job.job_id)
    headers = {"Location": links.self_}
    if job.created:
        logger.info("job submitted", extra={"model": job.model, "idempotent": idempotency_key is not None})
        http.metric("JobsSubmitted")
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
    views, following = list_jobs(limit, next_token, http.services(), as_owner=http.owner())
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
    return get_job(job_id, http.services(), as_owner=http.owner())


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
    page = read_output(job_id, offset, http.services(), as_owner=http.owner())
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
    view, cancelled = cancel_job(job_id, http.services(), as_owner=http.owner())
    if cancelled:
        logger.info("job cancelled", extra={"chunks": view.progress.chunks})
        http.metric("JobsCancelled")
    elif view.status != "cancelled":  # cancelling twice: what the client asked for holds
        raise JobAlreadyFinished(job_id, view.status)
    return view
