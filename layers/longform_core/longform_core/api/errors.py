"""Every error answer: ONE table from exception type to HTTP status (and the ErrorBody it renders),
and ONE handler that renders any exception through it.

The use cases raise the layer's errors (``RequestInvalid``, ``JobNotFound``, ...); the routes raise
the few that only HTTP has (``PayloadTooLarge``, ``JobAlreadyFinished``); Powertools raises its
request validation error and, for no matching route, ``NotFoundError`` (answered 405 with ``Allow``
when the path is known, else 404). Anything else is a 500 without a stack trace.
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Generic, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from ..errors import (
    BatchConflict,
    BatchInvalid,
    BatchNotFound,
    IdempotencyConflict,
    JobNotFound,
    JobStateInvalid,
    LongformError,
    PageTokenInvalid,
    Problem,
    RequestInvalid,
)
from ..models import JobStatus
from ..openai.errors import from_longform
from ..openai.files import FileNotFound
from .schemas import JSON, ErrorBody, ProblemModel

logger = Logger(child=True)
OPENAI_PREFIX = "/v1/"

# the routes, for 405 (a known path with another method) versus 404 (no such path)
ROUTE_METHODS: tuple[tuple[re.Pattern[str], frozenset[str]], ...] = (
    (re.compile(r"^/generations/?$"), frozenset({"GET", "POST"})),
    (re.compile(r"^/generations/[^/]+/?$"), frozenset({"GET", "DELETE"})),
    (re.compile(r"^/generations/[^/]+/output/?$"), frozenset({"GET"})),
    (re.compile(r"^/batches/?$"), frozenset({"GET", "POST"})),
    (re.compile(r"^/batches/[^/]+/?$"), frozenset({"GET", "DELETE"})),
    (re.compile(r"^/v1/models/?$"), frozenset({"GET"})),
    (re.compile(r"^/v1/files/?$"), frozenset({"GET", "POST"})),
    (re.compile(r"^/v1/files/[^/]+/?$"), frozenset({"GET", "DELETE"})),
    (re.compile(r"^/v1/files/[^/]+/content/?$"), frozenset({"GET"})),
    (re.compile(r"^/v1/batches/?$"), frozenset({"GET", "POST"})),
    (re.compile(r"^/v1/batches/[^/]+/?$"), frozenset({"GET"})),
    (re.compile(r"^/v1/batches/[^/]+/cancel/?$"), frozenset({"POST"})),
)


# ---- the errors only HTTP has ----------------------------------------------------------------------


class PayloadTooLarge(LongformError):
    """The request body is larger than ``API_MAX_BODY_BYTES``."""

    def __init__(self, size: int, limit: int):
        self.limit = limit
        super().__init__(f"the request body is {size} bytes; the limit is {limit}")


class JobAlreadyFinished(LongformError):
    """DELETE of a job that already ended otherwise than cancelled: nothing to cancel."""

    def __init__(self, job_id: str, status: JobStatus):
        self.job_id = job_id
        self.status = status
        super().__init__(f"job {job_id} already ended with status {status}; nothing to cancel")


class BatchAlreadyFinished(LongformError):
    """DELETE of a batch that already ended otherwise than cancelled: nothing to cancel."""

    def __init__(self, batch_id: str, status: str):
        self.batch_id = batch_id
        self.status = status
        super().__init__(f"batch {batch_id} already ended with status {status}; nothing to cancel")


class MethodNotAllowed(LongformError):
    def __init__(self, method: str, path: str, allowed: str):
        self.allowed = allowed
        super().__init__(f"{method} is not allowed on {path}; allowed: {allowed}")


class RouteNotFound(LongformError):
    def __init__(self, method: str, path: str):
        super().__init__(f"no route {method} {path}")


# ---- the table -------------------------------------------------------------------------------------

E = TypeVar("E", bound=Exception)


@dataclass(frozen=True)
class ErrorRule(Generic[E]):
    """How one exception type is answered: its status and its body (from the exception and request)."""

    status: HTTPStatus
    body: Callable[[E, APIGatewayProxyEvent], ErrorBody]
    headers: Callable[[E], dict[str, str]] | None = None


def _body(error: str, message: str, *problems: tuple[str, str], **extra: Any) -> ErrorBody:
    return ErrorBody(
        error=error,
        message=message,
        problems=[ProblemModel(field=field, message=text) for field, text in problems],
        **extra,
    )


def _invalid(problems: list[Problem]) -> ErrorBody:
    return ErrorBody.model_validate(RequestInvalid(problems).to_dict())


def _request_invalid(exc: RequestInvalid, _: APIGatewayProxyEvent) -> ErrorBody:
    return _invalid(exc.problems)


def _validation_error(exc: RequestValidationError, _: APIGatewayProxyEvent) -> ErrorBody:
    return _invalid(
        [
            Problem(".".join(str(p) for p in err.get("loc", ())) or "(request)", err["msg"])
            for err in exc.errors()
        ]
    )


def _page_token_invalid(exc: PageTokenInvalid, _: APIGatewayProxyEvent) -> ErrorBody:
    return _invalid([Problem("query.next_token", str(exc))])


def _job_not_found(exc: JobNotFound, event: APIGatewayProxyEvent) -> ErrorBody:
    job_id = (event.path_parameters or {}).get("job_id")
    if job_id is None:  # not a route of one job (a race on POST): what the use case said
        return _body("JobNotFound", str(exc), ("job_id", str(exc)))
    return _body("JobNotFound", str(exc), ("job_id", "no such job"), job_id=job_id)


def _route_not_found(exc: RouteNotFound, _: APIGatewayProxyEvent) -> ErrorBody:
    return _body("NotFound", str(exc), ("path", "unknown path; the API serves /generations and /batches"))


def _batch_invalid(exc: BatchInvalid, _: APIGatewayProxyEvent) -> ErrorBody:
    body = _invalid(exc.problems)
    body.error = "BatchInvalid"
    return body


def _batch_not_found(exc: BatchNotFound, event: APIGatewayProxyEvent) -> ErrorBody:
    batch_id = (event.path_parameters or {}).get("batch_id")
    return _body("BatchNotFound", str(exc), ("batch_id", "no such batch"), batch_id=batch_id)


def _batch_conflict(exc: BatchConflict, event: APIGatewayProxyEvent) -> ErrorBody:
    batch_id = (event.path_parameters or {}).get("batch_id")
    return _body(
        "BatchConflict", str(exc), ("batch_id", "changed under this request; try again"), batch_id=batch_id
    )


def _file_not_found(exc: FileNotFound, _: APIGatewayProxyEvent) -> ErrorBody:
    return _body("FileNotFound", str(exc), ("file_id", "no such file"))


def _batch_already_finished(exc: BatchAlreadyFinished, _: APIGatewayProxyEvent) -> ErrorBody:
    return _body(
        "BatchAlreadyFinished", str(exc), ("batch_id", f"already {exc.status}"), batch_id=exc.batch_id
    )


def _method_not_allowed(exc: MethodNotAllowed, _: APIGatewayProxyEvent) -> ErrorBody:
    return _body("MethodNotAllowed", str(exc), ("method", f"use one of {exc.allowed}"))


def _idempotency_conflict(exc: IdempotencyConflict, _: APIGatewayProxyEvent) -> ErrorBody:
    return _body(
        "IdempotencyConflict", str(exc), ("header.Idempotency-Key", "already used with a different body")
    )


def _job_state_invalid(exc: JobStateInvalid, _: APIGatewayProxyEvent) -> ErrorBody:
    return _body("JobStateInvalid", str(exc), ("job_id", str(exc)))


def _job_already_finished(exc: JobAlreadyFinished, _: APIGatewayProxyEvent) -> ErrorBody:
    return _body(
        "JobAlreadyFinished",
        str(exc),
        ("job_id", f"already {exc.status}"),
        job_id=exc.job_id,
        status=exc.status,
    )


def _payload_too_large(exc: PayloadTooLarge, _: APIGatewayProxyEvent) -> ErrorBody:
    return _body("PayloadTooLarge", str(exc), ("(body)", f"larger than {exc.limit} bytes"))


def _internal_error(exc: Exception, event: APIGatewayProxyEvent) -> ErrorBody:
    request_id = event.request_context.request_id
    return _body("InternalError", f"internal error; quote request id {request_id} when reporting it")


ERRORS: dict[type[Exception], ErrorRule[Any]] = {
    RequestInvalid: ErrorRule(HTTPStatus.BAD_REQUEST, _request_invalid),
    RequestValidationError: ErrorRule(HTTPStatus.BAD_REQUEST, _validation_error),
    PageTokenInvalid: ErrorRule(HTTPStatus.BAD_REQUEST, _page_token_invalid),
    JobNotFound: ErrorRule(HTTPStatus.NOT_FOUND, _job_not_found),
    RouteNotFound: ErrorRule(HTTPStatus.NOT_FOUND, _route_not_found),
    MethodNotAllowed: ErrorRule(
        HTTPStatus.METHOD_NOT_ALLOWED, _method_not_allowed, lambda exc: {"Allow": exc.allowed}
    ),
    IdempotencyConflict: ErrorRule(HTTPStatus.CONFLICT, _idempotency_conflict),
    JobStateInvalid: ErrorRule(HTTPStatus.CONFLICT, _job_state_invalid),
    JobAlreadyFinished: ErrorRule(HTTPStatus.CONFLICT, _job_already_finished),
    PayloadTooLarge: ErrorRule(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _payload_too_large),
    BatchInvalid: ErrorRule(HTTPStatus.BAD_REQUEST, _batch_invalid),
    BatchNotFound: ErrorRule(HTTPStatus.NOT_FOUND, _batch_not_found),
    FileNotFound: ErrorRule(HTTPStatus.NOT_FOUND, _file_not_found),
    BatchAlreadyFinished: ErrorRule(HTTPStatus.CONFLICT, _batch_already_finished),
    BatchConflict: ErrorRule(HTTPStatus.CONFLICT, _batch_conflict),
    Exception: ErrorRule(HTTPStatus.INTERNAL_SERVER_ERROR, _internal_error),
}


# ---- the handler -----------------------------------------------------------------------------------


def _no_route(event: APIGatewayProxyEvent) -> LongformError:
    """Powertools' ``NotFoundError`` (no route matched) in the API's terms: 405 or 404."""
    method = event.http_method.upper()
    for pattern, methods in ROUTE_METHODS:
        if pattern.match(event.path):
            return MethodNotAllowed(method, event.path, ", ".join(sorted(methods)))
    return RouteNotFound(method, event.path)


def error_response(exc: Exception, event: APIGatewayProxyEvent) -> Response[str]:
    """The answer to any exception a route (or the routing) raised, as the table says."""
    if isinstance(exc, NotFoundError):
        exc = _no_route(event)
    rule = next(ERRORS[cls] for cls in type(exc).__mro__ if cls in ERRORS)
    if rule.status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        logger.exception("unhandled error")
    body = rule.body(exc, event)
    if event.path.startswith(OPENAI_PREFIX):  # the OpenAI-compatible routes answer in OpenAI's shape
        return Response(
            status_code=rule.status.value,
            content_type=JSON,
            body=json.dumps(
                from_longform(rule.status.value, body.model_dump(mode="json", exclude_none=True))
            ),
            headers=rule.headers(exc) if rule.headers else None,
        )
    return Response(
        status_code=rule.status.value,
        content_type=JSON,
        body=body.model_dump_json(exclude_none=True),
        headers=rule.headers(exc) if rule.headers else None,
    )
