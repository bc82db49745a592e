"""The resolver: the routes, the one error handler, ``handle`` and the OpenAPI document."""

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from .. import __version__
from ..request import GenerationRequest
from ..services import MetricsSink, Services
from .batch_routes import BatchReference, batch_router
from .errors import error_response
from .openai_batch_routes import openai_batch_router
from .openai_routes import openai_router
from .routes import router
from .schemas import JSON

app = APIGatewayRestResolver(enable_validation=True)
app.include_router(router)
app.include_router(batch_router)
app.include_router(openai_router)
app.include_router(openai_batch_router)


def _on_error(exc: Exception) -> Response[str]:
    return error_response(exc, app.current_event)


app.exception_handler(Exception)(_on_error)  # every exception: errors.ERRORS decides the answer


def handle(
    event: dict[str, Any],
    context: LambdaContext,
    *,
    services: Services | None = None,
    metrics: MetricsSink | None = None,
) -> dict[str, Any]:
    """Resolve one API Gateway REST proxy event (the Lambda handler and ``longform serve`` call this).

    ``services``: what the routes use (default: the container's, ``runtime.get_services()``);
    ``metrics``: where JobsSubmitted/JobsCancelled are counted. Neither outlives the request.
    """
    if services is not None:
        app.context["services"] = services  # resolve() clears the context when it returns
    if metrics is not None:
        app.context["metrics"] = metrics
    return app.resolve(event, context)


OPENAPI_DESCRIPTION = (
    "Durable long LLM generations past a provider's per-request output cap, by response continuation. "
    "On AWS every call needs IAM (SigV4, service `execute-api`) or, when deployed with ApiAuth=API_KEY, "
    "an `x-api-key` header. A job belongs to the caller that submitted it (the IAM principal, or the "
    "API key): every other caller gets a 404 for it, as for an unknown id. Errors are JSON naming every "
    "problem."
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
    # POST /batches reads its body raw too: the JSONL itself, or a reference to a file in the bucket
    schemas["BatchReference"] = BatchReference.model_json_schema()
    doc["paths"]["/batches"]["post"]["requestBody"] = {
        "required": True,
        "content": {
            "application/jsonl": {
                "schema": {
                    "type": "string",
                    "description": "one request per line: the OpenAI Batch input shape, or "
                    '{"custom_id", "prompt"}; the body of a line is a GenerationRequest',
                }
            },
            JSON: {"schema": {"$ref": "#/components/schemas/BatchReference"}},
        },
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
