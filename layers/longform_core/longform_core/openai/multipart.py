"""``multipart/form-data`` bodies (the OpenAI SDK's file upload), parsed with the standard library's
email parser (``cgi`` is gone from Python 3.13)."""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes
from email.policy import HTTP

from ..errors import Problem, RequestInvalid


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    data: bytes


def parse_form(content_type: str, body: bytes) -> dict[str, Part]:
    """The form's parts by name; ``RequestInvalid`` when the body is not a multipart form."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise RequestInvalid([Problem("(body)", "expected multipart/form-data with a boundary")])
    message = message_from_bytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body, policy=HTTP)
    if not message.is_multipart():
        raise RequestInvalid([Problem("(body)", "not a multipart form")])
    parts: dict[str, Part] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        parts[name] = Part(name=name, filename=part.get_filename(), data=data)
    return parts
