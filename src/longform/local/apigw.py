"""API Gateway REST API (v1) proxy events for the API function, as the Lambda integration sends them.

One builder for ``longform serve`` (an HTTP request on loopback becomes an event) and the tests.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

STAGE = "v1"
DOMAIN = "abc123defg.execute-api.us-east-1.amazonaws.com"
# the API's resources (template.yaml): path -> (resource template, path parameters)
RESOURCES = (
    (re.compile(r"^/generations/(?P<job_id>[^/]+)/output$"), "/generations/{job_id}/output"),
    (re.compile(r"^/generations/(?P<job_id>[^/]+)$"), "/generations/{job_id}"),
    (re.compile(r"^/generations$"), "/generations"),
    (re.compile(r"^/batches/(?P<batch_id>[^/]+)$"), "/batches/{batch_id}"),
    (re.compile(r"^/batches$"), "/batches"),
    (re.compile(r"^/v1/models$"), "/v1/models"),
    (re.compile(r"^/v1/files/(?P<file_id>[^/]+)/content$"), "/v1/files/{file_id}/content"),
    (re.compile(r"^/v1/files/(?P<file_id>[^/]+)$"), "/v1/files/{file_id}"),
    (re.compile(r"^/v1/files$"), "/v1/files"),
    (re.compile(r"^/v1/batches/(?P<batch_id>[^/]+)/cancel$"), "/v1/batches/{batch_id}/cancel"),
    (re.compile(r"^/v1/batches/(?P<batch_id>[^/]+)$"), "/v1/batches/{batch_id}"),
    (re.compile(r"^/v1/batches$"), "/v1/batches"),
)
TEST_IDENTITY = {
    "sourceIp": "203.0.113.10",
    "userAgent": "pytest",
    "caller": "AROAEXAMPLE:pytest",
    "userArn": "arn:aws:sts::123456789012:assumed-role/longform-user/pytest",
    "accountId": "123456789012",
}


def api_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | dict[str, list[str]] | None = None,
    base64_body: bool = False,
    stage: str = STAGE,
    domain: str = DOMAIN,
    identity: dict[str, str] | None = None,
    default_headers: bool = True,
    request_time_ms: int = 1767225600000,
) -> dict[str, Any]:
    """``body``: a str/bytes is sent as is, anything else as JSON; ``query`` values may be lists."""
    resource, path_parameters = path, None
    for pattern, template in RESOURCES:
        match = pattern.match(path)
        if match:
            resource, path_parameters = template, match.groupdict() or None
            break
    raw: str | None
    if body is None:
        raw = None
    else:
        data = (
            body
            if isinstance(body, bytes)
            else (body if isinstance(body, str) else json.dumps(body)).encode()
        )
        raw = base64.b64encode(data).decode() if base64_body else data.decode("utf-8", "replace")
    all_headers: dict[str, str] = {}
    if default_headers:
        all_headers = {"Host": domain, "Accept": "application/json", "User-Agent": "pytest"}
        if body is not None:
            all_headers["Content-Type"] = "application/json"
    all_headers.update(headers or {})
    multi_query = {k: v if isinstance(v, list) else [v] for k, v in (query or {}).items()}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": domain.split(".")[0],
            "domainName": domain,
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "protocol": "HTTP/1.1",
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": request_time_ms,
            "resourcePath": resource,
            "stage": stage,
            "identity": dict(identity if identity is not None else TEST_IDENTITY),
        },
        "body": raw,
        "isBase64Encoded": base64_body and body is not None,
    }


def body_of(response: dict[str, Any]) -> Any:
    """The decoded JSON body of a proxy response."""
    raw = response.get("body") or ""
    if response.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return json.loads(raw)


def header(response: dict[str, Any], name: str) -> str | None:
    """A response header, case-insensitively (single- or multi-value)."""
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower() and values:
            return ", ".join(str(v) for v in values)
    return None
