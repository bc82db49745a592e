"""API Gateway REST API (v1) proxy events for the API function, as the Lambda integration sends them."""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

STAGE = "v1"
DOMAIN = "abc123defg.execute-api.us-east-1.amazonaws.com"
RESOURCES = (
    (re.compile(r"^/generations/(?P<job_id>[^/]+)/output$"), "/generations/{job_id}/output"),
    (re.compile(r"^/generations/(?P<job_id>[^/]+)$"), "/generations/{job_id}"),
    (re.compile(r"^/generations$"), "/generations"),
)


def api_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    base64_body: bool = False,
    stage: str = STAGE,
    domain: str = DOMAIN,
) -> dict[str, Any]:
    """``body``: a str/bytes is sent as is, anything else as JSON."""
    resource, path_parameters = path, None
    for pattern, template in RESOURCES:
        match = pattern.match(path)
        if match:
            resource, path_parameters = template, match.groupdict() or None
            break
    raw: str | None
    if body is None:
        raw = None
    elif isinstance(body, bytes):
        raw = base64.b64encode(body).decode() if base64_body else body.decode("utf-8")
    elif isinstance(body, str):
        raw = base64.b64encode(body.encode()).decode() if base64_body else body
    else:
        text = json.dumps(body)
        raw = base64.b64encode(text.encode()).decode() if base64_body else text
    all_headers = {"Host": domain, "Accept": "application/json", "User-Agent": "pytest"}
    if body is not None:
        all_headers["Content-Type"] = "application/json"
    all_headers.update(headers or {})
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": dict(query) if query else None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
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
            "requestTimeEpoch": 1767225600000,
            "resourcePath": resource,
            "stage": stage,
            "identity": {
                "sourceIp": "203.0.113.10",
                "userAgent": "pytest",
                "caller": "AROAEXAMPLE:pytest",
                "userArn": "arn:aws:sts::123456789012:assumed-role/longform-user/pytest",
                "accountId": "123456789012",
            },
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
