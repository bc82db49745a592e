"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

Every ``/v1`` answer that is an error has this body, with the status code OpenAI uses for it, so the
OpenAI SDK raises its usual exception (400 ``BadRequestError``, 404 ``NotFoundError``, 409
``ConflictError``, 413 ``APIStatusError``, 500 ``InternalServerError``). It is made from longform's
own error body (``api/schemas.ErrorBody``: ``error``, ``message``, ``problems``), so one table
(``api/errors.py``) still decides every status; the message names every problem.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

# OpenAI's error ``type`` per status (its API reference: invalid_request_error for a request the
# client can fix, authentication_error for a missing or wrong key, server_error for its own faults)
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class OpenAIErrorDetail(BaseModel):
    message: str = Field(description="what went wrong, every problem named (`field: message`)")
    type: str = Field(description="invalid_request_error, authentication_error, server_error, ...")
    param: str | None = Field(default=None, description="the first field at fault")
    code: str | None = Field(default=None, description="longform's error name in snake case")


class OpenAIErrorBody(BaseModel):
    """Every error answer of the ``/v1`` routes, in OpenAI's shape."""

    error: OpenAIErrorDetail


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def openai_error(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The body of an OpenAI error answer."""
    return {
        "error": {
            "message": message,
            "type": ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            "param": param,
            "code": code,
        }
    }


def from_longform(status: int, body: Any) -> dict[str, Any]:
    """longform's error body (``error``, ``message``, ``problems``) in OpenAI's shape: the message
    names every problem (``field: message``), ``param`` is the first problem's field and ``code``
    longform's error name in snake case (``request_invalid``, ``batch_not_found``, ...)."""
    if not isinstance(body, dict):
        return openai_error(status, str(body) or f"HTTP {status}")
    problems = [p for p in body.get("problems") or [] if isinstance(p, dict)]
    message = str(body.get("message") or body.get("error") or f"HTTP {status}")
    details = "; ".join(f"{p.get('field')}: {p.get('message')}" for p in problems)
    if details and details not in message:
        message = f"{message}: {details}"
    param = next((str(p["field"]) for p in problems if p.get("field") and p["field"] != "(body)"), None)
    name = body.get("error")
    return openai_error(status, message, param=param, code=_snake(name) if isinstance(name, str) else None)
