"""The HTTP API: a Powertools REST resolver over the one submit path, the status model and cancel.

Routes (API Gateway REST proxy events; ``functions/api/app.py`` is the thin Lambda handler)::

    POST   /generations                   submit a job (202, Location); Idempotency-Key header
    GET    /generations                   the most recent jobs, newest first, paginated
    GET    /generations/{job_id}          status and progress (readable while the job runs)
    GET    /generations/{job_id}/output   the text so far from a character offset, or a presigned URL
    DELETE /generations/{job_id}          cancel: stop the execution, keep the partial output

Every error is JSON naming every problem: ``{"error", "message", "problems": [{"field", "message"}]}``
(400 bad input, 404 unknown job or route, 405 wrong method, 409 conflict, 413 body too large,
500 without a stack trace). The route functions are thin: the work is in ``submit``, ``status``,
``cancel`` and ``job_store``. :func:`openapi_document` is the generated OpenAPI document
(``docs/openapi.json``; ``make openapi`` rewrites it, a test fails when it drifts).

Serve it anywhere that speaks API Gateway proxy events: ``handle(event, context)``.
"""

import base64
import binascii
import contextlib
import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.logging.exceptions import OrphanedChildLoggerError
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from . import __version__
from .cancel import cancel_job
from .errors import (
    IdempotencyConflict,
    JobNotFound,
    JobStateInvalid,
    PageTokenInvalid,
    Problem,
    RequestInvalid,
)
from .job_store import JobKeys
from .models import JobStatus, Manifest
from .request import GenerationRequest, parse_request
from .runtime import get_services
from .services import MetricsSink, Services
from .status import JobView, job_view
from .submit import submit_job

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

logger = Logger(child=True)

JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{1,80}$"
IDEMPOTENCY_KEY_MAX = 255
LIST_LIMIT_DEFAULT = 20
LIST_LIMIT_MAX = 100
PRESIGNED_URL_SECONDS = 900
LIST_WORKERS = 8
JSON = "application/json"
MARKDOWN = "text/markdown; charset=utf-8"

# the routes, for 405 (a known path with another method) versus 404 (no such path)
ROUTE_METHODS: tuple[tuple[re.Pattern[str], frozenset[str]], ...] = (
    (re.compile(r"^/generations/?$"), frozenset({"GET", "POST"})),
    (re.compile(r"^/generations/[^/]+/?$"), frozenset({"GET", "DELETE"})),
    (re.compile(r"^/generations/[^/]+/output/?$"), frozenset({"GET"})),
)


# ---- response models -----------------------------------------------------------------------------


class ProblemModel(BaseModel):
    field: str = Field(
        description="where: a dotted path into the request (`messages[0].role`, `query.limit`)"
    )
    message: str = Field(description="what is wrong with it")


class ErrorBody(BaseModel):
    """Every error answer: what went wrong, with every problem named."""

    error: str = Field(description="the error name, e.g. RequestInvalid, JobNotFound, IdempotencyConflict")
    message: str
    problems: list[ProblemModel] = Field(default_factory=list)
    job_id: str | None = None
    status: JobStatus | None = Field(default=None, description="the job's status, when the error is about it")


class Links(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    self_: str = Field(alias="self", description="GET: status and progress")
    output: str = Field(description="GET: the text so far")
    cancel: str = Field(description="DELETE: cancel the job")


class SubmitAccepted(BaseModel):
    """``POST /generations``: the job was accepted (or, with a repeated Idempotency-Key, found)."""

    job_id: str
    status: JobStatus
    model: str
    links: Links


class OutputPage(BaseModel):
    """``GET /generations/{job_id}/output``: the text from ``offset``, inline or as a presigned URL."""

    job_id: str
    status: JobStatus
    offset: int = Field(description="the character offset this page starts at")
    next_offset: int = Field(description="pass as `offset` to get what comes next")
    complete: bool = Field(description="the job has ended and nothing follows `next_offset`")
    text: str | None = Field(default=None, description="the characters [offset, next_offset); null with url")
    url: str | None = Field(
        default=None,
        description="presigned S3 GET of the whole output.md, given instead of `text` when the rest is "
        "larger than the inline limit; the page is its `bytes` bytes from `byte_offset` "
        "(`Range: bytes={byte_offset}-{byte_offset + bytes - 1}`)",
    )
    expires_in: int | None = Field(default=None, description="seconds the url stays valid")
    byte_offset: int | None = Field(default=None, description="the UTF-8 byte offset of `offset` (with url)")
    bytes: int = Field(description="UTF-8 size of the part from `offset` to `next_offset`")


class JobList(BaseModel):
    """``GET /generations``: the most recent jobs first."""

    items: list[JobView]
    next_token: str | None = Field(default=None, description="pass as `next_token` for the next page")


# ---- errors the routes raise -----------------------------------------------------------------------


class ApiError(Exception):
    """An error answer with a status code; ``body`` is what the client gets."""

    def __init__(self, status: HTTPStatus, body: ErrorBody, headers: dict[str, str] | None = None):
        super().__init__(body.message)
        self.status = status
        self.body = body
        self.headers = headers or {}


def _error(
    http_status: HTTPStatus,
    error: str,
    message: str,
    problems: list[Problem] | None = None,
    **extra: Any,
) -> ApiError:
    return ApiError(
        http_status,
        ErrorBody(
            error=error,
            message=message,
            problems=[ProblemModel(field=p.field, message=p.message) for p in problems or []],
            **extra,
        ),
    )


def _error_response(
    status: HTTPStatus, body: ErrorBody, headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(
        status_code=status.value,
        content_type=JSON,
        body=body.model_dump_json(exclude_none=True),
        headers=headers,
    )


def error_responses(*codes: HTTPStatus) -> dict[int, Any]:
    """OpenAPI ``responses`` entries for error codes, all with the ErrorBody schema."""
    return {
        code.value: {"description": code.phrase, "content": {JSON: {"model": ErrorBody}}} for code in codes
    }


# ---- the resolver ------------------------------------------------------------------------------

app = APIGatewayRestResolver(enable_validation=True)


def handle(
    event: dict[str, Any], context: LambdaContext, *, metrics: MetricsSink | None = None
) -> dict[str, Any]:
    """Resolve one API Gateway REST proxy event (the Lambda handler and ``longform serve`` call this)."""
    if metrics is not None:
        app.context["metrics"] = metrics  # cleared by resolve() when it returns
    return app.resolve(event, context)


def services() -> Services:
    return get_services()


def _metric(name: str) -> None:
    metrics = app.context.get("metrics")
    if metrics is not None:
        metrics.add_metric(name=name, unit="Count", value=1)


def _base_path() -> str:
    """The stage prefix when the client called the execute-api endpoint (its URLs include the stage)."""
    ctx = app.current_event.request_context
    domain = ctx.domain_name or app.current_event.headers.get("host") or ""
    stage = ctx.stage
    if stage and stage != "$default" and ".execute-api." in domain:
        return f"/{stage}"
    return ""


def _log_job(job_id: str) -> None:
    """The job id on every log line of this request (the handler's Logger clears it per request)."""
    with contextlib.suppress(OrphanedChildLoggerError):  # no parent Logger: served without the handler
        logger.append_keys(job_id=job_id)


def _links(job_id: str) -> Links:
    base = f"{_base_path()}/generations/{job_id}"
    return Links(self_=base, output=f"{base}/output", cancel=base)


def _find_manifest(job_id: str) -> Manifest:
    _log_job(job_id)
    manifest = services().store.find_manifest(job_id)
    if manifest is None:
        raise _error(
            HTTPStatus.NOT_FOUND,
            "JobNotFound",
            f"no job {job_id!r}",
            [Problem("job_id", "no such job")],
            job_id=job_id,
        )
    return manifest


def _view(manifest: Manifest) -> JobView:
    store = services().store
    return job_view(manifest, store.get_result(manifest.job_id) if manifest.terminal else None)


def _request_body() -> bytes:
    event = app.current_event
    raw = event.body or ""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RequestInvalid([Problem("(body)", "not valid base64")]) from exc
    return raw.encode("utf-8")


JobIdPath = Annotated[
    str,
    Path(min_length=1, max_length=80, pattern=JOB_ID_PATTERN, description="the job id (the execution name)"),
]


@app.post(
    "/generations",
    operation_id="createGeneration",
    summary="Start a generation job",
    description=(
        "Validates the request (every problem is named) and starts the workflow. "
        "With an `Idempotency-Key` header a repeated POST starts nothing new and answers 202 with the "
        "same job (its current status) and `Idempotent-Replayed: true`; the same key with a different "
        "body is a 409."
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
    svc = services()
    body = _request_body()
    limit = svc.settings.api_max_body_bytes
    if len(body) > limit:
        raise _error(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "PayloadTooLarge",
            f"the request body is {len(body)} bytes; the limit is {limit}",
            [Problem("(body)", f"larger than {limit} bytes")],
        )
    if not body.strip():
        raise RequestInvalid([Problem("(body)", "required: a JSON request with messages or prompt")])
    request: GenerationRequest = parse_request(body)
    job = submit_job(request, svc, idempotency_key=idempotency_key)
    _log_job(job.job_id)
    manifest = svc.store.find_manifest(job.job_id)
    status: JobStatus = manifest.status if manifest else "queued"
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


@app.get(
    "/generations",
    operation_id="listGenerations",
    summary="List the most recent jobs",
    description="Newest first (the workflow's executions), one view per job; paginate with next_token.",
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
    svc = services()
    try:
        names, following = svc.require_executions().recent(limit, next_token)
    except PageTokenInvalid as exc:
        raise RequestInvalid([Problem("query.next_token", str(exc))]) from exc

    def view_of(job_id: str) -> JobView | None:
        manifest = svc.store.find_manifest(job_id)
        return None if manifest is None else _view(manifest)

    if names:
        with ThreadPoolExecutor(max_workers=min(LIST_WORKERS, len(names))) as pool:
            views = list(pool.map(view_of, names))
    else:
        views = []
    # an execution without a manifest was not started by the submit path: not a job
    return JobList(items=[v for v in views if v is not None], next_token=following)


@app.get(
    "/generations/<job_id>",
    operation_id="getGeneration",
    summary="Status and progress of a job",
    description="Readable at any time, also while the job runs.",
    tags=["generations"],
    responses={
        200: {"description": "The job's status and progress", "content": {JSON: {"model": JobView}}},
        **error_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND),
    },
)
def get_generation(job_id: JobIdPath) -> JobView:
    return _view(_find_manifest(job_id))


@app.get(
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
    svc = services()
    manifest = _find_manifest(job_id)
    key = JobKeys(job_id).output
    stored = svc.store.get_text(key) or ""
    # output.md may run ahead of the manifest after a crash: only the committed part is the output
    text_so_far = stored[: manifest.answer_chars]
    rest = text_so_far[offset:]
    rest_bytes = len(rest.encode("utf-8"))
    next_offset = offset + len(rest)
    complete = manifest.terminal and next_offset >= len(text_so_far)
    large = rest_bytes > svc.settings.output_inline_max_bytes
    url = None
    if large:
        url = svc.store.presigned_url(key, content_type=MARKDOWN, expires_in=PRESIGNED_URL_SECONDS)
    if _wants_markdown():
        headers = {
            "X-Next-Offset": str(next_offset),
            "X-Job-Status": manifest.status,
            "X-Output-Complete": str(complete).lower(),
        }
        if url is not None:
            headers["Location"] = url
            return Response(status_code=HTTPStatus.SEE_OTHER.value, body="", headers=headers)
        return Response(status_code=200, content_type=MARKDOWN, body=rest, headers=headers)
    page = OutputPage(
        job_id=job_id,
        status=manifest.status,
        offset=offset,
        next_offset=next_offset,
        complete=complete,
        bytes=rest_bytes,
    )
    if url is not None:
        page.url = url
        page.expires_in = PRESIGNED_URL_SECONDS
        page.byte_offset = len(text_so_far[:offset].encode("utf-8"))
    else:
        page.text = rest
    return Response(status_code=200, content_type=JSON, body=page)


def _wants_markdown() -> bool:
    accept = (
        app.current_event.headers.get("accept") or app.current_event.headers.get("Accept") or ""
    ).lower()
    return "text/markdown" in accept and JSON not in accept


@app.delete(
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
    _find_manifest(job_id)
    view, cancelled = cancel_job(job_id, services())
    if cancelled:
        logger.info("job cancelled", extra={"chunks": view.progress.chunks})
        _metric("JobsCancelled")
        return view
    if view.status == "cancelled":
        return view  # cancelling twice: what the client asked for holds
    raise _error(
        HTTPStatus.CONFLICT,
        "JobAlreadyFinished",
        f"job {job_id} already ended with status {view.status}; nothing to cancel",
        [Problem("job_id", f"already {view.status}")],
        job_id=job_id,
        status=view.status,
    )


# ---- error handlers --------------------------------------------------------------------------------

ErrorT = TypeVar("ErrorT", bound=Exception)


def _handles(
    exc_class: type[ErrorT],
) -> Callable[[Callable[[ErrorT], Response[Any]]], Callable[[ErrorT], Response[Any]]]:
    """``app.exception_handler`` with types (Powertools' decorator is untyped)."""

    def register(func: Callable[[ErrorT], Response[Any]]) -> Callable[[ErrorT], Response[Any]]:
        app.exception_handler(exc_class)(func)
        return func

    return register


@_handles(ApiError)
def _api_error(exc: ApiError) -> Response[Any]:
    return _error_response(exc.status, exc.body, exc.headers)


@_handles(RequestInvalid)
def _request_invalid(exc: RequestInvalid) -> Response[Any]:
    return _error_response(HTTPStatus.BAD_REQUEST, ErrorBody.model_validate(exc.to_dict()))


@_handles(RequestValidationError)
def _validation_error(exc: RequestValidationError) -> Response[Any]:
    problems = [
        ProblemModel(field=".".join(str(p) for p in err.get("loc", ())) or "(request)", message=err["msg"])
        for err in exc.errors()
    ]
    body = ErrorBody(
        error="RequestInvalid",
        message=f"invalid request ({len(problems)} problem(s)): "
        + "; ".join(f"{p.field}: {p.message}" for p in problems),
        problems=problems,
    )
    return _error_response(HTTPStatus.BAD_REQUEST, body)


@_handles(IdempotencyConflict)
def _idempotency_conflict(exc: IdempotencyConflict) -> Response[Any]:
    body = ErrorBody(
        error="IdempotencyConflict",
        message=str(exc),
        problems=[ProblemModel(field="header.Idempotency-Key", message="already used with a different body")],
    )
    return _error_response(HTTPStatus.CONFLICT, body)


@_handles(JobNotFound)
def _job_not_found(exc: JobNotFound) -> Response[Any]:
    body = ErrorBody(
        error="JobNotFound", message=str(exc), problems=[ProblemModel(field="job_id", message=str(exc))]
    )
    return _error_response(HTTPStatus.NOT_FOUND, body)


@_handles(JobStateInvalid)
def _job_state_invalid(exc: JobStateInvalid) -> Response[Any]:
    body = ErrorBody(
        error="JobStateInvalid", message=str(exc), problems=[ProblemModel(field="job_id", message=str(exc))]
    )
    return _error_response(HTTPStatus.CONFLICT, body)


@_handles(NotFoundError)
def _no_route(exc: NotFoundError) -> Response[Any]:
    method = app.current_event.http_method.upper()
    path = app.current_event.path
    for pattern, methods in ROUTE_METHODS:
        if pattern.match(path):
            allowed = ", ".join(sorted(methods))
            body = ErrorBody(
                error="MethodNotAllowed",
                message=f"{method} is not allowed on {path}; allowed: {allowed}",
                problems=[ProblemModel(field="method", message=f"use one of {allowed}")],
            )
            return _error_response(HTTPStatus.METHOD_NOT_ALLOWED, body, {"Allow": allowed})
    body = ErrorBody(
        error="NotFound",
        message=f"no route {method} {path}",
        problems=[ProblemModel(field="path", message="unknown path; the API serves /generations")],
    )
    return _error_response(HTTPStatus.NOT_FOUND, body)


@_handles(ServiceError)
def _service_error(exc: ServiceError) -> Response[Any]:
    status = HTTPStatus(exc.status_code)
    body = ErrorBody(error=status.phrase.replace(" ", ""), message=exc.msg)
    return _error_response(status, body)


@_handles(Exception)
def _internal_error(exc: Exception) -> Response[Any]:
    logger.exception("unhandled error")
    request_id = app.current_event.request_context.request_id
    body = ErrorBody(
        error="InternalError",
        message=f"internal error; quote request id {request_id} when reporting it",
    )
    return _error_response(HTTPStatus.INTERNAL_SERVER_ERROR, body)


# ---- the OpenAPI document --------------------------------------------------------------------------

OPENAPI_DESCRIPTION = (
    "Durable long LLM generations past a provider's per-request output cap, by response continuation. "
    "On AWS every call needs IAM (SigV4, service `execute-api`) or, when deployed with ApiAuth=API_KEY, "
    "an `x-api-key` header. Errors are JSON naming every problem."
)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of this API, as ``docs/openapi.json`` holds it."""
    doc: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(title="longform", version=__version__, description=OPENAPI_DESCRIPTION)
    )
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    # The POST body is read raw and checked by parse_request (so that every problem, cross-field ones
    # included, is named in one 400); its schema is the public request format.
    request_schema = GenerationRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in request_schema.pop("$defs", {}).items():
        schemas[name] = definition
    schemas["GenerationRequest"] = request_schema
    doc["paths"]["/generations"]["post"]["requestBody"] = {
        "required": True,
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/GenerationRequest"}}},
    }
    # validation errors are answered 400 (ErrorBody), never Powertools' default 422
    for operations in doc["paths"].values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    # and Powertools' own validation-error schemas go when nothing refers to them any more
    for name in ("HTTPValidationError", "ResponseValidationError", "ValidationError"):
        if f'"#/components/schemas/{name}"' not in json.dumps(doc):
            schemas.pop(name, None)
    return doc


def openapi_json() -> str:
    """``docs/openapi.json``, byte for byte."""
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"
