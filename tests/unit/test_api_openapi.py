"""docs/openapi.json is generated from the API's code (`make openapi`) and must not drift from it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from longform_core import __version__, api
from longform_core.api.errors import ROUTE_METHODS
from longform_core.api.route_helpers import LIST_LIMIT_MAX
from longform_core.models import JOB_ID_PATTERN
from longform_core.request import GenerationRequest

from longform.openapi import main

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return api.openapi_document()


def test_docs_openapi_json_matches_the_code() -> None:
    assert DOC_PATH.read_text(encoding="utf-8") == api.openapi_json(), (
        "docs/openapi.json drifted from longform_core/api/: run `make openapi`"
    )


def test_the_check_command_reports_drift(tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    assert main([str(target), "--check"]) == 1  # missing
    assert main([str(target)]) == 0
    assert main([str(target), "--check"]) == 0
    target.write_text(target.read_text().replace('"longform"', '"renamed"', 1))
    assert main([str(target), "--check"]) == 1


def test_info(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] == "longform"
    assert doc["info"]["version"] == __version__


def test_every_route_with_its_status_codes(doc: dict[str, Any]) -> None:
    documented = {
        (method.upper(), path): sorted(op["responses"])
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }
    assert documented == {
        ("POST", "/generations"): ["202", "400", "409", "413"],
        ("GET", "/generations"): ["200", "400"],
        ("GET", "/generations/{job_id}"): ["200", "400", "404"],
        ("GET", "/generations/{job_id}/output"): ["200", "303", "400", "404"],
        ("DELETE", "/generations/{job_id}"): ["200", "400", "404", "409"],
        ("POST", "/batches"): ["202", "400", "409", "413"],
        ("GET", "/batches"): ["200", "400"],
        ("GET", "/batches/{batch_id}"): ["200", "400", "404"],
        ("DELETE", "/batches/{batch_id}"): ["200", "400", "404", "409"],
        ("GET", "/v1/models"): ["200"],
        ("POST", "/v1/files"): ["200", "400", "413"],
        ("GET", "/v1/files"): ["200", "400"],
        ("GET", "/v1/files/{file_id}"): ["200", "404"],
        ("GET", "/v1/files/{file_id}/content"): ["200", "404"],
        ("DELETE", "/v1/files/{file_id}"): ["200", "404"],
        ("POST", "/v1/batches"): ["200", "400", "409", "413"],
        ("GET", "/v1/batches"): ["200", "400"],
        ("GET", "/v1/batches/{batch_id}"): ["200", "404"],
        ("POST", "/v1/batches/{batch_id}/cancel"): ["200", "404"],
    }
    # the 405 table agrees with the routes
    for method, path in documented:
        concrete = path.replace("{job_id}", "job-1")
        allowed = [methods for pattern, methods in ROUTE_METHODS if pattern.match(concrete)]
        assert len(allowed) == 1 and method in allowed[0], (method, path)
    assert sum(len(m) for _, m in ROUTE_METHODS) == len(documented)


def test_errors_are_error_bodies_and_validation_is_400_not_422(doc: dict[str, Any]) -> None:
    text = json.dumps(doc)
    assert '"422"' not in text
    assert "HTTPValidationError" not in text
    for path, ops in doc["paths"].items():
        # the OpenAI-compatible routes answer errors in OpenAI's shape
        schema = "OpenAIErrorBody" if path.startswith("/v1/") else "ErrorBody"
        for op in ops.values():
            for code, response in op["responses"].items():
                if code.startswith("4"):
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": f"#/components/schemas/{schema}"
                    }
    error = doc["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"error", "message"}
    assert set(error["properties"]) == {"error", "message", "problems", "job_id", "batch_id", "status"}


def test_request_body_is_the_public_request_format(doc: dict[str, Any]) -> None:
    post = doc["paths"]["/generations"]["post"]
    assert post["requestBody"] == {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/GenerationRequest"}}},
    }
    schema = doc["components"]["schemas"]["GenerationRequest"]
    assert set(schema["properties"]) == set(GenerationRequest.model_fields)
    assert schema["additionalProperties"] is False
    for ref in re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(doc)):
        assert ref in doc["components"]["schemas"], ref
    assert [p["name"] for p in post["parameters"]] == ["idempotency-key"]
    assert set(post["responses"]["202"]["headers"]) == {"Location", "Idempotent-Replayed"}


def test_parameters(doc: dict[str, Any]) -> None:
    def params(path: str, method: str) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in doc["paths"][path][method].get("parameters", [])}

    listing = params("/generations", "get")
    assert listing["limit"]["schema"]["maximum"] == LIST_LIMIT_MAX
    assert listing["limit"]["schema"]["minimum"] == 1
    assert "next_token" in listing
    for path, method in (
        ("/generations/{job_id}", "get"),
        ("/generations/{job_id}", "delete"),
        ("/generations/{job_id}/output", "get"),
    ):
        job_id = params(path, method)["job_id"]
        assert job_id["required"] is True
        assert job_id["schema"]["pattern"] == JOB_ID_PATTERN
    assert params("/generations/{job_id}/output", "get")["offset"]["schema"]["minimum"] == 0
