"""A client for the longform HTTP API, deployed (SigV4 or an API key) or local (``longform serve``)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from .live import LiveText

DEFAULT_LOCAL_URL = "http://127.0.0.1:8787"
TERMINAL = {"succeeded", "context_exhausted", "incomplete", "failed", "cancelled"}  # job_status.py
_EXECUTE_API = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$")


class ApiError(Exception):
    """An HTTP error answer of the API, readable: its message and every problem it names."""

    def __init__(self, status: int, body: Any):
        self.status = status
        self.body = body
        super().__init__(describe_error(status, body))


class ApiUnreachable(Exception):
    """The API did not answer at all (connection refused, DNS, timeout)."""


def describe_error(status: int, body: Any) -> str:
    """``HTTP 400 (invalid_request): the request is invalid`` and one ``  - field: message`` line
    per problem; a body that is not longform's error shape is shown as it came."""
    if not isinstance(body, dict):
        text = str(body).strip() or "(no body)"
        return f"HTTP {status}: {text[:500]}"
    code = body.get("error")
    message = body.get("message") or (json.dumps(body) if code is None else "")
    head = (
        f"HTTP {status}"
        + (f" ({code})" if isinstance(code, str) else "")
        + (f": {message}" if message else "")
    )
    problems = body.get("problems") or []
    lines = [f"  - {p.get('field', '?')}: {p.get('message', '')}" for p in problems if isinstance(p, dict)]
    return "\n".join([head, *lines])


def region_of(url: str) -> str | None:
    """The region of an ``https://{id}.execute-api.{region}.amazonaws.com/...`` URL."""
    host = urlsplit(url).hostname or ""
    match = _EXECUTE_API.match(host)
    return match.group(1) if match else None


class SigV4:
    """httpx auth that signs requests for API Gateway with the caller's AWS credentials."""

    def __init__(self, region: str):
        import botocore.session

        self.region = region
        credentials = botocore.session.Session().get_credentials()
        if credentials is None:
            raise RuntimeError("no AWS credentials found to sign the request (SigV4)")
        self.credentials = credentials

    def __call__(self, request: httpx.Request) -> httpx.Request:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("connection", "accept-encoding")
        }
        body = request.read()  # a streamed body too (the OpenAI SDK's multipart file upload)
        aws = AWSRequest(method=request.method, url=str(request.url), data=body, headers=headers)
        SigV4Auth(self.credentials, "execute-api", self.region).add_auth(aws)
        for key, value in aws.headers.items():
            request.headers[key] = value
        return request


class ApiClient:
    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        sigv4: bool | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ):
        self.base_url = (base_url or os.environ.get("LONGFORM_API_URL") or DEFAULT_LOCAL_URL).rstrip("/")
        region = region_of(self.base_url)
        use_sigv4 = sigv4 if sigv4 is not None else (region is not None and api_key is None)
        headers = {"x-api-key": api_key} if api_key else {}
        self._sign: Callable[[httpx.Request], httpx.Request] | None = (
            SigV4(region or "us-east-1") if use_sigv4 else None
        )
        self.http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        request = self.http.build_request(method, path, **kwargs)
        if self._sign is not None:
            request = self._sign(request)
        try:
            response = self.http.send(request)
        except httpx.TimeoutException as exc:
            raise ApiUnreachable(
                f"the API at {self.base_url} did not answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            hint = " (is `longform serve` running?)" if _is_loopback(self.base_url) else ""
            reason = "connection refused" if isinstance(exc, httpx.ConnectError) else type(exc).__name__
            raise ApiUnreachable(f"cannot reach the API at {self.base_url}: {reason}{hint}") from exc
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        if response.status_code >= 400:
            raise ApiError(response.status_code, body)
        return body

    def submit(self, request: dict[str, Any], *, idempotency_key: str | None = None) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._request("POST", "/generations", json=request, headers=headers)

    def status(self, job_id: str) -> Any:
        return self._request("GET", f"/generations/{job_id}")

    def output(self, job_id: str, *, offset: int = 0) -> Any:
        return self._request("GET", f"/generations/{job_id}/output", params={"offset": offset})

    def cancel(self, job_id: str) -> Any:
        return self._request("DELETE", f"/generations/{job_id}")

    def list(self, *, limit: int = 20, next_token: str | None = None) -> Any:
        params: dict[str, Any] = {"limit": limit}
        if next_token:
            params["next_token"] = next_token
        return self._request("GET", "/generations", params=params)

    def follow(
        self, job_id: str, *, poll: float = 1.0, offset: int = 0, drafts: bool = True
    ) -> Iterator[str]:
        """Yield the output as it grows until the job ends: the committed text and, while a chunk
        is in flight, its draft (``live.LiveText``: nothing is printed twice)."""
        live = LiveText()
        while True:
            page = self.output(job_id, offset=offset)
            text = page.get("text")
            if text is None and page.get("url"):
                full = httpx.get(page["url"], timeout=120).text  # presigned: no signing
                text = full[offset:]
            text = text or ""
            offset += len(text)
            draft = page.get("draft") if drafts else None
            draft_text = (
                draft.get("text") if isinstance(draft, dict) and draft.get("offset") == offset else None
            )
            shown = live.update(text, draft_text)
            if shown:
                yield shown
            if page.get("complete") or (page.get("status") in TERMINAL and not text):
                return
            time.sleep(poll)


def _is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")
