"""``longform serve``: the API function on loopback, without Docker.

Each HTTP request becomes an API Gateway REST proxy event and goes to the very handler in
``functions/api/app.py`` (in-process, inside the local moto cloud, like every other function),
and its proxy response goes back over HTTP. There is no authorizer locally; on AWS the API
requires IAM (SigV4) or an API key.
"""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .apigw import api_event
from .cloud import LocalCloud
from .openai_chat import ChatCompletions

API_FUNCTION = "ApiFunction"
STAGE = "local"
TEXT_TYPES = ("application/json", "text/", "application/problem+json")
# API Gateway's REST API payload quota: a larger body is refused with 413 before the function runs
MAX_BODY_BYTES = 10 * 1024 * 1024


def content_length_problem(value: str | None) -> tuple[int, str] | None:
    """The (status, message) a proxy answers for a ``Content-Length`` it cannot use, None when it
    is absent or a usable size: not a number or negative is 400, over the payload quota 413."""
    if value is None:
        return None
    text = value.strip()
    if not (text.isascii() and text.isdigit()):  # "abc", "-5", "1.5", "", "²" (a digit int() refuses)
        return 400, f"Content-Length {value!r} is not a byte count"
    if int(text) > MAX_BODY_BYTES:
        return 413, f"Request Too Long: the body may be at most {MAX_BODY_BYTES} bytes"
    return None


CHAT_COMPLETIONS = "/v1/chat/completions"  # served here, not by the function: it streams, and waits


def proxy_event(method: str, target: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """An HTTP request on loopback as the API Gateway REST API (v1) proxy event it would become."""
    parts = urlsplit(target)
    text_body = not body or _is_text(headers.get("content-type", "application/json"))
    return api_event(
        method,
        parts.path,
        body=body or None,
        headers=headers,
        query=parse_qs(parts.query, keep_blank_values=True),
        base64_body=not text_body,
        stage=STAGE,
        domain="127.0.0.1",
        identity={"sourceIp": "127.0.0.1", "userAgent": headers.get("user-agent", "")},
        default_headers=False,
        request_time_ms=int(datetime.now(UTC).timestamp() * 1000),
    )


def _is_text(content_type: str) -> bool:
    return any(content_type.lower().startswith(t) for t in TEXT_TYPES)


class LocalApi:
    """Serves the API function of a running :class:`LocalCloud` on loopback."""

    def __init__(self, cloud: LocalCloud, *, host: str = "127.0.0.1", port: int = 8787):
        self.cloud = cloud
        # one request at a time in the function, as in one Lambda container: the resolver keeps the
        # current event in module state, and concurrent requests (a stream polling while another
        # client submits) would read each other's
        self._function_lock = threading.Lock()
        self.chat = ChatCompletions(self.invoke)
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "longform-local-api"

            def _handle(self) -> None:
                problem = content_length_problem(self.headers.get("content-length"))
                if problem is not None:  # the body cannot be read: answer, then close the connection
                    self.close_connection = True
                    payload = json.dumps({"message": problem[1]}).encode()
                    self._answer(problem[0], {"Content-Type": "application/json"}, payload)
                    return
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                if self.command == "POST" and urlsplit(self.path).path.rstrip("/") == CHAT_COMPLETIONS:
                    api.chat.handle(self, headers, body)
                    return
                self._answer(*api.invoke(self.command, self.path, headers, body))

            def _answer(self, status: int, out_headers: dict[str, str], out_body: bytes) -> None:
                self.send_response(status)
                for key, value in out_headers.items():
                    if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(key, value)
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.send_header("Content-Length", str(len(out_body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out_body)

            def __getattr__(self, name: str) -> Any:
                # every method (QUERY, TRACE, ...) goes to the function, as API Gateway's ANY does;
                # the function answers 405 with Allow for the ones it lacks
                if name.startswith("do_"):
                    return self._handle
                raise AttributeError(name)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{host_text}:{port}"

    def invoke(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        event = proxy_event(method, target, headers, body)
        try:
            with self._function_lock:
                result = self.cloud.invoke(API_FUNCTION, event)
        except Exception as exc:  # the real integration answers 502 for a crashed function
            payload = json.dumps({"message": "Internal server error", "error": type(exc).__name__}).encode()
            return 502, {"Content-Type": "application/json"}, payload
        status = int(result.get("statusCode", 200))
        out_headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
        for key, values in (result.get("multiValueHeaders") or {}).items():
            if values:
                out_headers[key] = ", ".join(str(v) for v in values)
        raw = result.get("body") or ""
        out_body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
        return status, out_headers, out_body

    def start(self) -> LocalApi:
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="longform-local-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> LocalApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
