"""The HTTP API: a Powertools REST resolver over the one submit path, the status model, the output
and cancel.

Routes (API Gateway REST proxy events; ``functions/api/app.py`` is the thin Lambda handler)::

    POST   /generations                   submit a job (202, Location); Idempotency-Key header
    GET    /generations                   the most recent jobs, newest first, paginated
    GET    /generations/{job_id}          status and progress (readable while the job runs)
    GET    /generations/{job_id}/output   the text so far from a character offset, or a presigned URL
    DELETE /generations/{job_id}          cancel: stop the execution, keep the partial output

Every error is JSON naming every problem: ``{"error", "message", "problems": [{"field", "message"}]}``
(400 bad input, 404 unknown job or route, 405 wrong method, 409 conflict, 413 body too large,
500 without a stack trace).

    schemas.py    the response models (ErrorBody, SubmitAccepted, OutputPage, JobList, ...)
    errors.py     the one table from exception type to status and body, and its one handler
    route_helpers.py  what every router's routes share (services, caller, body, base path, metrics)
    routes.py     /generations: HTTP in, one use-case call (submit, status, output, cancel), HTTP out
    batch_routes.py  /batches: the same for the batch use cases (``batch/``)
    openai_routes.py, openai_batch_routes.py  /v1: OpenAI's Models, Files and Batch APIs
    resolver.py   the resolver, ``handle`` and the OpenAPI document (``docs/openapi.json``;
                  ``make openapi`` rewrites it, a test fails when it drifts)

Serve it anywhere that speaks API Gateway proxy events: ``handle(event, context, services=...)``.
"""

from .resolver import app, handle, openapi_document, openapi_json

__all__ = ["app", "handle", "openapi_document", "openapi_json"]
