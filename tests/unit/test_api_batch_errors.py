"""The batch's errors in the API's one error table (``api/errors.py``), each under its own name."""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from longform_core.api.errors import ERRORS, error_response
from longform_core.errors import BatchConflict, BatchInvalid, BatchNotFound, LineProblem, LongformError

BATCH_ID = "b-" + "0" * 40


def event(path: str) -> APIGatewayProxyEvent:
    return APIGatewayProxyEvent(
        {
            "path": path,
            "httpMethod": "DELETE",
            "pathParameters": {"batch_id": BATCH_ID},
            "requestContext": {"requestId": "r-1"},
            "headers": {},
        }
    )


@pytest.mark.parametrize(
    ("exc", "status", "name"),
    [
        (BatchInvalid([LineProblem(2, "a", "prompt", "required")]), 400, "BatchInvalid"),
        (BatchNotFound(f"no batch {BATCH_ID!r}"), 404, "BatchNotFound"),
        (BatchConflict(f"batch {BATCH_ID}: batch.json keeps changing under us"), 409, "BatchConflict"),
    ],
)
def test_every_batch_error_has_its_own_rule(exc: LongformError, status: int, name: str) -> None:
    assert type(exc) in ERRORS  # its own row, not a parent's
    response = error_response(exc, event(f"/batches/{BATCH_ID}"))
    body = json.loads(response.body)
    assert (response.status_code, body["error"]) == (status, name)
    assert body["problems"] and body["message"] == str(exc)


def test_a_batch_conflict_on_the_openai_routes_is_in_openais_shape() -> None:
    exc = BatchConflict(f"batch {BATCH_ID}: batch.json keeps changing under us")
    response = error_response(exc, event(f"/v1/batches/{BATCH_ID}/cancel"))
    body = json.loads(response.body)
    assert response.status_code == 409 and body["error"]["message"].startswith(str(exc))
