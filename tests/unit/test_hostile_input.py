"""Hostile JSON is a bad request, named, never a crash: through parse_request, the API and the drop folder."""

from __future__ import annotations

import json
from typing import Any

import pytest
from longform_core import api
from longform_core.drop_folder import handle_event
from longform_core.errors import RequestInvalid
from longform_core.request import parse_request
from longform_core.services import Services

from longform.local.apigw import api_event, body_of
from longform.local.lambda_runtime import LambdaContext

from .test_drop_folder import eventbridge, executions, upload

DEEP = "[" * 3000 + "]" * 3000
HOSTILE = {
    "nested 3,000 levels deep": '{"prompt": "Write", "stop": ' + DEEP + "}",
    "an integer of 5,000 digits": '{"prompt": "Write", "seed": ' + "7" * 5000 + "}",
    "a bare deep array": DEEP,
}


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_parse_request_names_the_problem(body: str, as_bytes: bool) -> None:
    with pytest.raises(RequestInvalid) as info:
        parse_request(body.encode() if as_bytes else body)
    (problem,) = info.value.problems
    assert problem.field == "(body)"
    assert "nested too deeply" in problem.message or "4300 digits" in problem.message


def test_an_already_parsed_deep_structure_is_named_too() -> None:
    deep: Any = "x"
    for _ in range(3000):
        deep = [deep]
    with pytest.raises(RequestInvalid):
        parse_request({"prompt": "Write", "stop": deep})


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_the_api_answers_400_not_500(services: Services, body: str) -> None:
    services.settings = services.settings.model_copy(update={"api_max_body_bytes": 1 << 20})
    event = api_event("POST", "/generations", body=body)
    response = api.handle(event, LambdaContext("ApiFunction", 28.0), services=services)  # type: ignore[arg-type]
    assert response["statusCode"] == 400
    error = body_of(response)
    assert error["error"] == "RequestInvalid"
    assert error["problems"][0]["field"] == "(body)"
    assert executions(services) == []


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_the_drop_folder_writes_the_error_file_and_starts_nothing(services: Services, body: str) -> None:
    store = services.store
    services.settings = services.settings.model_copy(update={"api_max_body_bytes": 1 << 20})
    upload(store, "requests/hostile.json", body.encode())
    (outcome,) = handle_event(eventbridge(store, "requests/hostile.json"), services)
    assert outcome.action == "rejected"
    error = json.loads(
        store.s3.get_object(Bucket=store.bucket, Key="results/hostile.error.json")["Body"].read()
    )
    assert error["error"] == "RequestInvalid" and error["problems"][0]["field"] == "(body)"
    assert executions(services) == []


# ---- text that is not text: a lone UTF-16 surrogate, which JSON can spell and Python decodes, but
# which no write (S3, the execution input, a log) can encode

NOT_TEXT = {
    "a stop item": ('{"prompt": "Write", "stop": ["\\ud800"]}', "stop[0]"),
    "a stop string": ('{"prompt": "Write", "stop": "end\\udfff"}', "stop"),
    "the prompt": ('{"prompt": "Wr\\ud800ite"}', "prompt"),
    "a message": ('{"messages": [{"role": "user", "content": "x\\udc00"}]}', "messages[0].content"),
    "the model": ('{"prompt": "Write", "model": "m\\ud83d"}', "model"),
    "a field name": ('{"prompt": "Write", "\\ud800": 1}', "\\ud800"),
}


@pytest.mark.parametrize(("body", "field"), NOT_TEXT.values(), ids=NOT_TEXT.keys())
def test_a_lone_surrogate_is_named_by_parse_request(body: str, field: str) -> None:
    with pytest.raises(RequestInvalid) as info:
        parse_request(body)
    fields = [p.field for p in info.value.problems]
    assert field in fields
    assert any("surrogate" in p.message for p in info.value.problems if p.field == field)
    json.dumps(info.value.to_dict(), ensure_ascii=False).encode()  # the error itself is text


def test_a_surrogate_pair_is_text() -> None:
    request = parse_request('{"prompt": "A smile \\ud83d\\ude00", "stop": ["\\ud83d\\ude00"]}')
    assert request.stop == ["\U0001f600"]


@pytest.mark.parametrize(("body", "field"), NOT_TEXT.values(), ids=NOT_TEXT.keys())
def test_a_lone_surrogate_is_a_400_from_the_api(services: Services, body: str, field: str) -> None:
    event = api_event("POST", "/generations", body=body)
    response = api.handle(event, LambdaContext("ApiFunction", 28.0), services=services)  # type: ignore[arg-type]
    assert response["statusCode"] == 400, response["body"]
    error = body_of(response)
    assert error["error"] == "RequestInvalid"
    assert field in [p["field"] for p in error["problems"]]
    assert executions(services) == []


@pytest.mark.parametrize(("body", "field"), NOT_TEXT.values(), ids=NOT_TEXT.keys())
def test_a_lone_surrogate_in_the_drop_folder_gets_its_error_file(
    services: Services, body: str, field: str
) -> None:
    store = services.store
    upload(store, "requests/surrogate.json", body.encode())
    (outcome,) = handle_event(eventbridge(store, "requests/surrogate.json"), services)
    assert outcome.action == "rejected"
    error = json.loads(
        store.s3.get_object(Bucket=store.bucket, Key="results/surrogate.error.json")["Body"].read()
    )
    assert error["error"] == "RequestInvalid"
    assert field in [p["field"] for p in error["problems"]]
    assert executions(services) == []
