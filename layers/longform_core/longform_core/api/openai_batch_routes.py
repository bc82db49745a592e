"""OpenAI's Files and Batch APIs on the API function: HTTP in, one call into ``openai/files.py`` or
``openai/batches.py``, HTTP out (errors in OpenAI's shape, ``errors.error_response``).

::

    POST   /v1/files                      upload (multipart/form-data: purpose=batch, file)
    GET    /v1/files                      the caller's files
    GET    /v1/files/{file_id}            one file object
    GET    /v1/files/{file_id}/content    its bytes (a batch's output and error files too)
    DELETE /v1/files/{file_id}            delete an uploaded file
    POST   /v1/batches                    {input_file_id, endpoint, completion_window, metadata}
    GET    /v1/batches                    the caller's batches (after, limit)
    GET    /v1/batches/{batch_id}         one batch object
    POST   /v1/batches/{batch_id}/cancel  cancel it (finished lines kept)

An upload through the API is capped by ``API_MAX_BODY_BYTES`` (1 MiB by default; past it a 413 in
OpenAI's shape). Lambda's synchronous payload limit (6 MB, and a binary body arrives base64-encoded,
4/3 its size) and API Gateway's 10 MB bound what that setting may be. A larger input is put in the
bucket (``batch-inputs/``, then ``input_file_id: "s3://..."``, or dropped in ``batches/``).
"""

import json
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Header, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from ..errors import Problem, RequestInvalid
from ..openai import batches
from ..openai.errors import OpenAIErrorBody
from ..openai.files import FileNotFound, FileStore, batch_of_file, output_file_object, split_output
from ..openai.multipart import parse_form
from .route_helpers import IDEMPOTENCY_KEY_MAX, RouteHelpers
from .schemas import JSON

openai_batch_router = APIGatewayRouter()  # type: ignore[no-untyped-call]  # Powertools' __init__ has no annotations
http = RouteHelpers(openai_batch_router)
OBJECT = {JSON: {"schema": {"type": "object"}}}
ERROR = {JSON: {"model": OpenAIErrorBody}}


def _doc(summary: str, description: str, *codes: int) -> dict[str, Any]:
    return {
        "summary": summary,
        "description": description,
        "tags": ["openai"],
        "responses": {
            200: {"description": "OpenAI's object", "content": OBJECT},
            **{c: {"description": "an OpenAI error object", "content": ERROR} for c in codes},
        },
    }


def _files() -> FileStore:
    return FileStore(http.services(), http.owner())


def _json_body() -> Any:
    raw = http.request_body(http.services().settings.api_max_body_bytes, "required: a JSON object")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise RequestInvalid([Problem("(body)", f"not valid JSON: {exc}")]) from exc


@openai_batch_router.post(
    "/v1/files",
    operation_id="createFileOpenAI",
    **_doc(
        "Upload a file (OpenAI's Files API)", "multipart/form-data with `purpose=batch` and `file`.", 400, 413
    ),
)
def create_file() -> dict[str, Any]:
    body = http.request_body(http.services().settings.api_max_body_bytes, "required: a multipart form")
    form = parse_form(http.header("content-type"), body)
    problems = [Problem(name, "required") for name in ("purpose", "file") if name not in form]
    if problems:
        raise RequestInvalid(problems)
    purpose = form["purpose"].data.decode("utf-8", "replace").strip()
    return _files().create(form["file"].data, form["file"].filename or "upload.jsonl", purpose).model_dump()


@openai_batch_router.get(
    "/v1/files",
    operation_id="listFilesOpenAI",
    **_doc("The caller's files", "Every uploaded file of the caller's, newest first.", 400),
)
def list_files() -> dict[str, Any]:
    return {"object": "list", "data": [f.model_dump() for f in _files().list()], "has_more": False}


def _batch_file(file_id: str) -> tuple[bytes, dict[str, Any]] | None:
    """A batch's output or error file: its bytes and file object (None: not such a file id)."""
    found = batch_of_file(file_id)
    if found is None:
        return None
    batch_id, errors = found
    try:
        output, ended = batches.batch_output(batch_id, http.services(), http.owner())
    except Exception as exc:
        raise FileNotFound(file_id) from exc
    data = split_output(output, errors=errors)
    return data, output_file_object(batch_id, data, ended, errors=errors)


@openai_batch_router.get(
    "/v1/files/<file_id>",
    operation_id="getFileOpenAI",
    **_doc("One file", "An uploaded file, or a batch's output or error file.", 404),
)
def get_file(file_id: str) -> dict[str, Any]:
    batch_file = _batch_file(file_id)
    return batch_file[1] if batch_file else _files().get(file_id).model_dump()


@openai_batch_router.get(
    "/v1/files/<file_id>/content",
    operation_id="getFileContentOpenAI",
    **_doc(
        "A file's content", "The bytes of an uploaded file; a batch's output or error file as JSONL.", 404
    ),
)
def get_file_content(file_id: str) -> Response[str]:
    batch_file = _batch_file(file_id)
    data = batch_file[0] if batch_file else _files().content(file_id)
    return Response(status_code=200, content_type="application/octet-stream", body=data.decode("utf-8"))


@openai_batch_router.delete(
    "/v1/files/<file_id>",
    operation_id="deleteFileOpenAI",
    **_doc("Delete a file", "An uploaded file (a batch's output and error files go with the batch).", 404),
)
def delete_file(file_id: str) -> dict[str, Any]:
    if batch_of_file(file_id):
        raise RequestInvalid([Problem("file_id", "a batch's output and error files cannot be deleted")])
    _files().delete(file_id)
    return {"id": file_id, "object": "file", "deleted": True}


@openai_batch_router.post(
    "/v1/batches",
    operation_id="createBatchOpenAI",
    **_doc(
        "Start a batch (OpenAI's Batch API)",
        "`input_file_id` (an uploaded file, or `s3://{bucket}/batch-inputs/...` for a larger one), "
        "`endpoint` `/v1/chat/completions`, `completion_window` `24h`, `metadata`. Every line is "
        "validated first (a 400 names each bad line); each line is a long job, its `max_tokens` the "
        "whole answer's budget. The same file again (or the same `Idempotency-Key`) is the same batch.",
        400,
        409,
        413,
    ),
)
def create_batch_route(
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=IDEMPOTENCY_KEY_MAX)
    ] = None,
) -> dict[str, Any]:
    return batches.create_batch(_json_body(), http.services(), http.owner(), idempotency_key)


@openai_batch_router.get(
    "/v1/batches",
    operation_id="listBatchesOpenAI",
    **_doc("The caller's batches", "Newest first; `after` is the last id of the previous page.", 400),
)
def list_batches_route(
    after: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    return batches.list_page(http.services(), http.owner(), after, limit)


@openai_batch_router.get(
    "/v1/batches/<batch_id>",
    operation_id="getBatchOpenAI",
    **_doc("One batch", "OpenAI's batch object: status, request_counts, output_file_id, error_file_id.", 404),
)
def get_batch_route(batch_id: str) -> dict[str, Any]:
    return batches.retrieve_batch(batch_id, http.services(), http.owner())


@openai_batch_router.post(
    "/v1/batches/<batch_id>/cancel",
    operation_id="cancelBatchOpenAI",
    **_doc(
        "Cancel a batch", "Stops every running line (its text kept); finished lines stay in the output.", 404
    ),
)
def cancel_batch_route(batch_id: str) -> dict[str, Any]:
    return batches.cancel(batch_id, http.services(), http.owner())
