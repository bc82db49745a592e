"""A DeepInfra-compatible (OpenAI chat completions) HTTP server on loopback.

``EmulatorServer`` serves ``POST {base_url}/chat/completions`` with the deterministic
model of ``longform.emulator.model``: per-request output cap, context window with the
real providers' 400 wordings (and llama.cpp's behaviour, or a stream that ends silently),
prefill continuation in several provider styles (optionally echoing the prefill back, as
llama.cpp does), ``stop`` sequences, SSE streaming with usage, reasoning output, and
injectable faults. It is
controlled in process (``configure``, ``inject``, ``reset``, ``requests``) or over HTTP
(``/_emulator/config``, ``/_emulator/faults``, ``/_emulator/reset``,
``/_emulator/requests``, ``/_emulator/health``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import socket
import sys
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self, get_args, get_type_hints

from longform.emulator.model import (
    ReasoningMode,
    canonical_output,
    conversation_messages,
    message_text,
    plan_continuation,
    prompt_tokens,
    split_prefill,
)

__all__ = [
    "CHAT_PATHS",
    "FAULT_TYPES",
    "MODEL_IDS",
    "ContextError",
    "EmulatorServer",
    "EmulatorSettings",
    "context_error_message",
    "error_body",
    "llamacpp_context_error_body",
    "llamacpp_context_error_message",
]

OverflowMode = Literal["reject", "clamp", "llamacpp", "silent_stream"]
ContextErrorStyle = Literal["requested", "too_large"]
ErrorBodyStyle = Literal["nested", "flat", "llamacpp"]
UsageChunkMode = Literal["last", "separate"]
PrefillStyle = Literal["assistant", "vllm", "prefix", "none", "reject"]
EchoPrefillMode = Literal["off", "merged", "split"]

CHAT_PATHS = ("/v1/openai/chat/completions", "/v1/chat/completions")
MODEL_PATHS = ("/v1/openai/models", "/v1/models")
MODEL_IDS = ("longform/emulator", "longform/emulator-reasoning", "longform/emulator-thinking")
FAULT_TYPES = ("status", "cut", "slow", "stall")
MAX_LOG = 10_000
MAX_PREFIX_CONVERSATIONS = 512
PREFILL_WHITESPACE_MESSAGE = "Assistant prefill must not end with whitespace"
PREFILL_REJECTED_MESSAGE = "This model does not support assistant message prefill"
ECHO_PIECE_CHARS = 7
"""echo_prefill="split": the echoed prefill is sent in deltas of at most this many characters."""


@dataclass
class EmulatorSettings:
    """Server behaviour; every field can be changed at run time with ``configure``."""

    cap: int = 16384
    """Per-request output cap (tokens)."""
    context_length: int | None = 131072
    """Context window in tokens (None: unlimited)."""
    answer_tokens: int = 2000
    """Answer length when the prompt does not ask for one."""
    reasoning_tokens: int = 300
    """Reasoning length when the prompt does not ask for one."""
    reasoning: ReasoningMode = "auto"
    """Reasoning style: "auto" (by model name), "none", "field", "inline"."""
    token_delay: float = 0.0
    """Seconds per emitted token."""
    overflow: OverflowMode = "reject"
    """A request over the context window (prompt >= context, or prompt + max_tokens > context):

    - "reject": HTTP 400 (``context_error_style`` wording, ``error_body`` style);
    - "clamp": a prompt that leaves room is served with max_tokens reduced to what fits;
    - "llamacpp": as llama.cpp's llama-server: only prompt >= context is rejected (400,
      ``llamacpp_context_error_body`` whatever ``error_body`` is); otherwise generation stops
      with "length" when the context is full (limit min(max_tokens, cap, context - prompt));
    - "silent_stream": a streamed request gets HTTP 200 and a stream that ends cleanly after
      ``silent_stream_tokens`` token deltas, with no finish_reason, no usage and no
      ``data: [DONE]``; without streaming, the same 400 as "reject".
    """
    silent_stream_tokens: int = 0
    """overflow="silent_stream": token deltas sent before the stream ends (0: none)."""
    context_error_style: ContextErrorStyle = "requested"
    error_body: ErrorBodyStyle = "nested"
    usage_chunk: UsageChunkMode = "last"
    keepalive_every: int = 0
    """Emit an SSE comment ``: keep-alive`` every N tokens (0: never)."""
    api_key: str | None = None
    price_input_per_mtok: float = 0.10
    price_output_per_mtok: float = 0.40
    prefill_style: PrefillStyle = "assistant"
    reject_trailing_whitespace_prefill: bool = False
    echo_prefill: EchoPrefillMode = "off"
    """Send a continued prefill back at the start of the reply (as llama.cpp's llama-server):
    "merged" (streamed: with the first new delta), "split" (streamed: in deltas of at most
    ``ECHO_PIECE_CHARS`` characters before the new ones), "off". Without streaming, both
    put it at the start of the message. usage.completion_tokens counts only new tokens."""
    verbose: bool = False

    def to_dict(self, *, redact: bool = True) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if redact and data["api_key"] is not None:
            data["api_key"] = "***"
        return data

    def updated(self, **fields: Any) -> EmulatorSettings:
        """A copy with ``fields`` changed; raises ValueError on unknown fields or bad values."""
        for name, value in fields.items():
            _check_setting(name, value)
        if fields.get("context_length") == 0:
            fields["context_length"] = None
        return dataclasses.replace(self, **fields)


_SETTING_TYPES: dict[str, Any] = get_type_hints(EmulatorSettings)
_INT_SETTINGS = {
    "cap": 1,
    "answer_tokens": 0,
    "reasoning_tokens": 0,
    "keepalive_every": 0,
    "silent_stream_tokens": 0,
}
_FLOAT_SETTINGS = ("token_delay", "price_input_per_mtok", "price_output_per_mtok")


def _check_setting(name: str, value: Any) -> None:
    if name not in _SETTING_TYPES:
        raise ValueError(f"unknown setting {name!r}")
    if name in _INT_SETTINGS:
        if not _is_int(value) or value < _INT_SETTINGS[name]:
            raise ValueError(f"{name} must be an integer >= {_INT_SETTINGS[name]}")
    elif name == "context_length":
        if value is not None and (not _is_int(value) or value < 0):
            raise ValueError("context_length must be a positive integer, 0 or null (unlimited)")
    elif name in _FLOAT_SETTINGS:
        if not _is_number(value) or value < 0:
            raise ValueError(f"{name} must be a number >= 0")
    elif name == "api_key":
        if value is not None and not isinstance(value, str):
            raise ValueError("api_key must be a string or null")
    elif name in ("reject_trailing_whitespace_prefill", "verbose"):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
    else:
        choices = get_args(_SETTING_TYPES[name])
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_fault(fault: Any) -> dict[str, Any]:
    """Validate one fault description; returns a copy."""
    if not isinstance(fault, Mapping):
        raise ValueError("a fault must be an object")
    kind = fault.get("type")
    if kind not in FAULT_TYPES:
        raise ValueError(f"fault type must be one of {', '.join(FAULT_TYPES)}")
    if kind == "status" and (not _is_int(fault.get("status")) or not 400 <= fault["status"] <= 599):
        raise ValueError("a status fault needs an integer 'status' between 400 and 599")
    if "retry_after" in fault and not _is_number(fault["retry_after"]):
        raise ValueError("'retry_after' must be a number of seconds")
    if kind in ("cut", "stall") and (not _is_int(fault.get("after_tokens")) or fault["after_tokens"] < 0):
        raise ValueError(f"a {kind} fault needs an integer 'after_tokens' >= 0")
    if kind == "stall" and (not _is_number(fault.get("seconds")) or fault["seconds"] < 0):
        raise ValueError("a stall fault needs a number 'seconds' >= 0")
    if kind == "slow" and (not _is_number(fault.get("token_delay")) or fault["token_delay"] < 0):
        raise ValueError("a slow fault needs a number 'token_delay' >= 0")
    return dict(fault)


# --------------------------------------------------------------------------- errors


class ContextError(Exception):
    """A request that does not fit the context window (HTTP 400)."""


def context_error_message(
    context_length: int, prompt: int, max_tokens: int | None, style: ContextErrorStyle = "requested"
) -> str:
    """The provider wording for a context overflow (input alone, or input + max_tokens)."""
    if max_tokens is None or prompt >= context_length:
        return (
            f"This model's maximum context length is {context_length} tokens. However, your request "
            f"has {prompt} input tokens. Please reduce the length of the input messages."
        )
    if style == "too_large":
        return (
            f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This model's maximum "
            f"context length is {context_length} tokens and your request has {prompt} input tokens "
            f"({max_tokens} > {context_length} - {prompt})."
        )
    return (
        f"This model's maximum context length is {context_length} tokens. However, you requested "
        f"{prompt + max_tokens} tokens ({prompt} in the messages, {max_tokens} in the completion). "
        "Please reduce the length of the messages or completion."
    )


def llamacpp_context_error_message(n_prompt_tokens: int, n_ctx: int) -> str:
    """llama-server's wording for a prompt that leaves no room in the context."""
    return (
        f"request ({n_prompt_tokens} tokens) exceeds the available context size ({n_ctx} tokens), "
        "try increasing it"
    )


def llamacpp_context_error_body(n_prompt_tokens: int, n_ctx: int) -> dict[str, Any]:
    """llama-server's 400 body for a prompt that leaves no room (prompt tokens >= n_ctx)."""
    return {
        "error": {
            "code": 400,
            "message": llamacpp_context_error_message(n_prompt_tokens, n_ctx),
            "type": "exceed_context_size_error",
            "n_prompt_tokens": n_prompt_tokens,
            "n_ctx": n_ctx,
        }
    }


_NESTED_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}
_LLAMACPP_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    500: "server_error",
    501: "not_supported_error",
    503: "unavailable_error",
}
_FLAT_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
}
_DEFAULT_MESSAGES = {
    429: "Model is overloaded, please try again later",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service temporarily unavailable",
    504: "Gateway timeout",
}


def error_body(status: int, message: str, style: ErrorBodyStyle = "nested") -> dict[str, Any]:
    """The JSON error body in the provider's style."""
    if style == "flat":
        kind = _FLAT_TYPES.get(status, "InternalServerError" if status >= 500 else "APIError")
        return {"object": "error", "message": message, "type": kind, "code": status}
    if style == "llamacpp":  # format_error_response in llama.cpp's tools/server/server-common.cpp
        kind = _LLAMACPP_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        return {"error": {"code": status, "message": message, "type": kind}}
    nested = _NESTED_TYPES.get(status, "rate_limit_error" if status == 429 else "server_error")
    if 400 <= status < 500 and status not in _NESTED_TYPES and status != 429:
        nested = "invalid_request_error"
    return {"error": {"message": message, "type": nested, "code": status}}


class _HTTPError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        headers: Mapping[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.body = body
        """A fixed JSON body (else ``error_body`` in the configured style)."""


# --------------------------------------------------------------------------- the server


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512  # benchmarks open hundreds of connections at once

    def __init__(self, address: tuple[str, int], emulator: EmulatorServer) -> None:
        self.emulator = emulator
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that went away is not an error; anything else is a bug worth seeing
        if isinstance(sys.exc_info()[1], OSError) and not self.emulator.settings.verbose:
            return
        super().handle_error(request, client_address)


class EmulatorServer:
    """The emulator on a background thread. ``with EmulatorServer() as emu: emu.base_url``."""

    def __init__(
        self, settings: EmulatorSettings | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._defaults = dataclasses.replace(settings) if settings else EmulatorSettings()
        self._settings = dataclasses.replace(self._defaults)
        self.host = host
        self._requested_port = port
        self._lock = threading.Lock()
        self._faults: deque[dict[str, Any]] = deque()
        self._log: list[dict[str, Any]] = []
        self._prefixes: OrderedDict[str, deque[tuple[int, str, int]]] = OrderedDict()
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve on a daemon thread; returns self."""
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="longform-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the emulator is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (the admin endpoints live under it)."""
        host = self.host if self.host not in ("", "0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL; clients POST ``base_url + "/chat/completions"``."""
        return f"{self.url}/v1/openai"

    # control -----------------------------------------------------------------

    @property
    def settings(self) -> EmulatorSettings:
        """A snapshot of the current settings."""
        with self._lock:
            return dataclasses.replace(self._settings)

    def configure(self, **fields: Any) -> EmulatorSettings:
        """Change settings (thread-safe); returns the new settings."""
        with self._lock:
            self._settings = self._settings.updated(**fields)
            return dataclasses.replace(self._settings)

    def inject(self, *faults: Mapping[str, Any]) -> None:
        """Queue faults; each is consumed by the next chat request (FIFO)."""
        checked = [check_fault(f) for f in faults]
        with self._lock:
            self._faults.extend(checked)

    @property
    def pending_faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(f) for f in self._faults]

    def reset(self) -> None:
        """Back to the settings given at construction; clear faults, request log and prefix cache."""
        with self._lock:
            self._settings = dataclasses.replace(self._defaults)
            self._faults.clear()
            self._log.clear()
            self._prefixes.clear()

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The request log (copies), oldest first."""
        with self._lock:
            return [dict(entry) for entry in self._log]

    def serve_forever(self) -> None:
        """Block until ``stop`` is called from another thread (or KeyboardInterrupt)."""
        self.start()
        thread = self._thread
        while thread is not None and thread.is_alive():
            thread.join(timeout=0.5)

    # internals used by the handler ------------------------------------------

    def _pop_fault(self) -> dict[str, Any] | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._log.append(entry)
            if len(self._log) > MAX_LOG:
                del self._log[: len(self._log) - MAX_LOG]

    def _cached_tokens(self, conversation_key: str, prefill: str, prompt: int) -> int:
        """Prompt tokens of the latest earlier request of this conversation whose prefill
        is a prefix of this one; remembers this request."""
        digest = hashlib.sha256(prefill.encode("utf-8", "surrogatepass")).hexdigest()
        with self._lock:
            history = self._prefixes.get(conversation_key)
            cached = 0
            if history is not None:
                self._prefixes.move_to_end(conversation_key)
                for length, prefix_digest, tokens in reversed(history):
                    if length <= len(prefill) and (
                        prefix_digest == digest
                        if length == len(prefill)
                        else hashlib.sha256(prefill[:length].encode("utf-8", "surrogatepass")).hexdigest()
                        == prefix_digest
                    ):
                        cached = tokens
                        break
            else:
                history = deque(maxlen=8)
                self._prefixes[conversation_key] = history
                while len(self._prefixes) > MAX_PREFIX_CONVERSATIONS:
                    self._prefixes.popitem(last=False)
            history.append((len(prefill), digest, prompt))
            return cached

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


# --------------------------------------------------------------------------- request handling


@dataclass
class _Emission:
    reasoning: tuple[str, ...]
    content: tuple[str, ...]
    completion_tokens: int
    finish_reason: str


def _select(reasoning: Sequence[str], content: Sequence[str], limit: int, stops: Sequence[str]) -> _Emission:
    """Up to ``limit`` pieces (reasoning first), cut before the first stop string in the content."""
    total = len(reasoning) + len(content)
    n = min(limit, total)
    r = tuple(reasoning[:n])
    c = tuple(content[: max(0, n - len(r))])
    finish = "stop" if n == total else "length"
    tokens = len(r) + len(c)
    if stops and c:
        text = "".join(c)
        hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
        if hits:
            at = min(hits)
            position = 0
            for index, piece in enumerate(c):
                if position + len(piece) > at:
                    head = piece[: at - position]
                    c = c[:index] + ((head,) if head else ())
                    tokens = len(r) + index + 1  # the token holding the stop string was generated
                    break
                position += len(piece)
            finish = "stop"
    return _Emission(r, c, tokens, finish)


_Delta = tuple[Literal["reasoning_content", "content"], str]
"""One streamed delta: the field and its text."""


@dataclass(frozen=True)
class _Echo:
    """The prefill as the server sends it back: the reasoning part and the content part."""

    reasoning: str = ""
    content: str = ""

    @property
    def chars(self) -> int:
        return len(self.reasoning) + len(self.content)


def _echo(prefill: str, style: str) -> _Echo:
    """A reasoning parser's view of the prefill (field style), else the prefill as sent."""
    if style != "field":
        return _Echo(content=prefill)
    _, reasoning, answer = split_prefill(prefill)
    return _Echo(reasoning=reasoning, content=answer)


def _with_echo(
    pieces: Sequence[_Delta], echo: _Echo, mode: EchoPrefillMode
) -> tuple[list[_Delta], list[_Delta]]:
    """(deltas sent before the new pieces, the new pieces) with the echo applied.

    "split": the echo goes first in pieces of at most ``ECHO_PIECE_CHARS`` characters.
    "merged": each part is prepended to the first new delta of its field, or sent alone
    before the new pieces when there is none. A continued prefill with a content part has
    a closed reasoning part, so no new reasoning follows it and the order is preserved.
    """
    before: list[_Delta] = []
    out = list(pieces)
    parts: tuple[_Delta, ...] = (("reasoning_content", echo.reasoning), ("content", echo.content))
    for name, text in parts:
        if not text or mode == "off":
            continue
        if mode == "split":
            before.extend(
                (name, text[i : i + ECHO_PIECE_CHARS]) for i in range(0, len(text), ECHO_PIECE_CHARS)
            )
            continue
        index = next((i for i, (field_name, _) in enumerate(out) if field_name == name), None)
        if index is None:
            before.append((name, text))
        else:
            out[index] = (name, text + out[index][1])
    return before, out


def _stop_strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return [s for s in value if s]
    raise _HTTPError(400, "invalid request: 'stop' must be a string or a list of strings")


def _sse(obj: Mapping[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "longform-emulator/0.1"
    server: _HTTPServer

    # plumbing ----------------------------------------------------------------

    @property
    def emulator(self) -> EmulatorServer:
        return self.server.emulator

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.emulator._track(self.connection, add=True)

    def finish(self) -> None:
        self.emulator._track(self.connection, add=False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        if self.emulator.settings.verbose:
            super().log_message(format, *args)

    def _path(self) -> str:
        path = self.path.split("?", 1)[0]
        return path.rstrip("/") or "/"

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_error_json(
        self, status: int, message: str, style: ErrorBodyStyle, headers: Mapping[str, str] | None = None
    ) -> None:
        self._send_json(status, error_body(status, message, style), headers)

    def _guard(self, action: Callable[[], None]) -> None:
        try:
            action()
        except OSError:  # the client went away (BrokenPipe, ConnectionReset, ...)
            self.close_connection = True

    # routing -----------------------------------------------------------------

    def do_GET(self) -> None:
        self._guard(self._get)

    def do_POST(self) -> None:
        self._guard(self._post)

    def _get(self) -> None:
        path = self._path()
        emu = self.emulator
        settings = emu.settings
        if path == "/_emulator/health":
            self._send_json(
                200,
                {
                    "status": "ok",
                    "base_url": emu.base_url,
                    "settings": settings.to_dict(),
                    "pending_faults": len(emu.pending_faults),
                    "requests": len(emu.requests),
                },
            )
        elif path == "/_emulator/requests":
            self._send_json(200, {"requests": emu.requests})
        elif path == "/_emulator/config":
            self._send_json(200, {"settings": settings.to_dict()})
        elif path in MODEL_PATHS:
            created = 1_700_000_000
            models = [
                {"id": m, "object": "model", "created": created, "owned_by": "longform"} for m in MODEL_IDS
            ]
            self._send_json(200, {"object": "list", "data": models})
        else:
            self._send_error_json(404, f"not found: {path}", settings.error_body)

    def _post(self) -> None:
        path = self._path()
        raw = self._read_body()
        if path in CHAT_PATHS:
            self._chat(raw)
            return
        settings = self.emulator.settings
        if path not in ("/_emulator/config", "/_emulator/faults", "/_emulator/reset"):
            self._send_error_json(404, f"not found: {path}", settings.error_body)
            return
        try:
            body: Any = json.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            if path == "/_emulator/config":
                new = self.emulator.configure(**body)
                self._send_json(200, {"settings": new.to_dict()})
            elif path == "/_emulator/faults":
                faults = body.get("faults", [])
                if not isinstance(faults, list):
                    raise ValueError("'faults' must be a list")
                self.emulator.inject(*faults)
                self._send_json(200, {"pending_faults": len(self.emulator.pending_faults)})
            else:
                self.emulator.reset()
                self._send_json(200, {"settings": self.emulator.settings.to_dict()})
        except ValueError as error:  # JSONDecodeError is a ValueError
            self._send_error_json(400, f"invalid request: {error}", settings.error_body)

    # chat completions ----------------------------------------------------------

    def _chat(self, raw: bytes) -> None:
        emu = self.emulator
        settings = emu.settings
        entry: dict[str, Any] = {
            "time": time.time(),
            "path": self._path(),
            "model": None,
            "messages": 0,
            "prompt_tokens": None,
            "max_tokens": None,
            "effective_max_tokens": None,
            "prefill_chars": 0,
            "continued": False,
            "echoed_chars": 0,
            "stream": False,
            "status": None,
            "completion_tokens": 0,
            "finish_reason": None,
            "cached_tokens": 0,
            "fault": None,
            "silent_stream": False,
        }
        recorded = False

        def record(status: int) -> None:
            nonlocal recorded
            entry["status"] = status
            if not recorded:
                recorded = True
                emu._record(entry)

        try:
            if settings.api_key is not None:
                auth = self.headers.get("Authorization", "")
                if auth != f"Bearer {settings.api_key}":
                    raise _HTTPError(401, "Invalid API key" if auth else "Missing API key")
            fault = emu._pop_fault()
            entry["fault"] = fault
            if fault is not None and fault["type"] == "status":
                status = int(fault["status"])
                message = str(
                    fault.get("message") or _DEFAULT_MESSAGES.get(status, HTTPStatus(status).phrase)
                )
                headers = {}
                if fault.get("retry_after") is not None:
                    retry = fault["retry_after"]
                    headers["Retry-After"] = str(int(retry)) if float(retry).is_integer() else str(retry)
                raise _HTTPError(status, message, headers)
            self._complete(raw, settings, fault, entry, record)
        except _HTTPError as error:
            record(error.status)
            if error.body is not None:
                self._send_json(error.status, error.body, error.headers)
            else:
                self._send_error_json(error.status, error.message, settings.error_body, error.headers)
        finally:
            if not recorded:
                entry["disconnected"] = True
                record(entry["status"] or 499)

    def _complete(
        self,
        raw: bytes,
        settings: EmulatorSettings,
        fault: dict[str, Any] | None,
        entry: dict[str, Any],
        record: Callable[[int], None],
    ) -> None:
        try:
            body = json.loads(raw)
        except ValueError as error:
            raise _HTTPError(400, f"invalid request: body is not valid JSON ({error})") from None
        if not isinstance(body, dict):
            raise _HTTPError(400, "invalid request: the body must be a JSON object")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _HTTPError(400, "invalid request: 'messages' must be a non-empty list")
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise _HTTPError(400, "invalid request: every message needs a string 'role'")
            if not isinstance(m.get("content"), str | list | None):
                raise _HTTPError(400, "invalid request: message 'content' must be a string, a list or null")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _HTTPError(400, "invalid request: 'model' must be a non-empty string")
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            max_tokens = body.get("max_completion_tokens")
        if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 1):
            raise _HTTPError(400, "invalid request: 'max_tokens' must be an integer >= 1 or null")
        seed = body.get("seed")
        if seed is not None and not _is_int(seed):
            raise _HTTPError(400, "invalid request: 'seed' must be an integer")
        stream = body.get("stream") is True
        stream_options = body.get("stream_options")
        include_usage = isinstance(stream_options, dict) and stream_options.get("include_usage") is True
        stops = _stop_strings(body.get("stop"))
        entry.update(model=model, messages=len(messages), max_tokens=max_tokens, stream=stream)

        # prefill
        last = messages[-1]
        prefill_text = message_text(last) if last.get("role") == "assistant" else None
        continued = False
        if prefill_text is not None:
            style = settings.prefill_style
            if style == "reject":
                raise _HTTPError(400, PREFILL_REJECTED_MESSAGE)
            if style == "vllm":
                if body.get("continue_final_message") is True and body.get("add_generation_prompt") is True:
                    raise _HTTPError(
                        400,
                        "Cannot set both `continue_final_message` and `add_generation_prompt` to True.",
                    )
                continued = body.get("continue_final_message") is True
            elif style == "prefix":
                continued = last.get("prefix") is True
            else:
                continued = style == "assistant"
            if continued and settings.reject_trailing_whitespace_prefill and prefill_text[-1:].isspace():
                raise _HTTPError(400, PREFILL_WHITESPACE_MESSAGE)
        entry.update(prefill_chars=len(prefill_text or ""), continued=continued)

        # context arithmetic
        prompt = prompt_tokens(messages)
        entry["prompt_tokens"] = prompt
        limit = settings.cap if max_tokens is None else min(max_tokens, settings.cap)
        silent = False
        context = settings.context_length
        if context:
            overflow = settings.overflow
            if overflow == "llamacpp":
                # llama.cpp (server-context.cpp) rejects only `n_tokens >= n_ctx`, then stops when full
                if prompt >= context:
                    raise _HTTPError(
                        400,
                        llamacpp_context_error_message(prompt, context),
                        body=llamacpp_context_error_body(prompt, context),
                    )
                limit = min(limit, context - prompt)
            elif prompt >= context or (
                max_tokens is not None and prompt + max_tokens > context and overflow != "clamp"
            ):
                if overflow == "silent_stream" and stream:
                    silent = True
                    limit = min(limit, settings.silent_stream_tokens)
                else:
                    raise _HTTPError(
                        400, context_error_message(context, prompt, max_tokens, settings.context_error_style)
                    )
            else:
                limit = min(limit, context - prompt)
        entry["effective_max_tokens"] = limit

        canonical = canonical_output(messages, model=model, seed=seed, settings=settings)
        plan = plan_continuation(canonical, prefill_text if continued else None)
        emission = _select(plan.reasoning, plan.content, limit, stops)
        echo = _Echo()
        if continued and prefill_text and settings.echo_prefill != "off":
            echo = _echo(prefill_text, canonical.style)
        entry["echoed_chars"] = echo.chars
        conversation = [[str(m.get("role")), message_text(m)] for m in conversation_messages(messages)]
        key = hashlib.sha256(json.dumps([model, conversation]).encode()).hexdigest()
        cached = self.emulator._cached_tokens(key, prefill_text or "", prompt)
        cost = (
            prompt * settings.price_input_per_mtok
            + emission.completion_tokens * settings.price_output_per_mtok
        ) / 1e6
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": emission.completion_tokens,
            "total_tokens": prompt + emission.completion_tokens,
            "estimated_cost": round(cost, 8),
            "prompt_tokens_details": {"cached_tokens": cached},
        }
        if canonical.style != "none":
            usage["completion_tokens_details"] = {"reasoning_tokens": len(emission.reasoning)}
        entry.update(
            completion_tokens=emission.completion_tokens,
            finish_reason=None if silent else emission.finish_reason,
            cached_tokens=cached,
            plan=plan.mode,
            silent_stream=silent,
        )
        delay = settings.token_delay
        if fault is not None and fault["type"] == "slow":
            delay = float(fault["token_delay"])
        response_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if stream:
            self._stream(
                emission,
                echo,
                usage,
                settings,
                fault,
                delay,
                include_usage,
                silent,
                response_id,
                created,
                model,
                record,
                entry,
            )
            return
        # non-streaming
        pause = delay * (len(emission.reasoning) + len(emission.content))
        if fault is not None and fault["type"] == "stall":
            pause += float(fault["seconds"])
        if pause > 0:
            time.sleep(pause)
        if fault is not None and fault["type"] == "cut":
            entry["finish_reason"] = None
            record(200)
            self._cut()
            return
        message: dict[str, Any] = {"role": "assistant", "content": echo.content + "".join(emission.content)}
        if canonical.style == "field":
            message["reasoning_content"] = echo.reasoning + "".join(emission.reasoning) or None
        payload = {
            "id": response_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": emission.finish_reason}],
            "usage": usage,
        }
        record(200)
        self._send_json(200, payload)

    def _cut(self) -> None:
        """Drop the connection abruptly: no final chunk, no [DONE], no terminating chunk."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        self.connection.close()

    def _stream(
        self,
        emission: _Emission,
        echo: _Echo,
        usage: dict[str, Any],
        settings: EmulatorSettings,
        fault: dict[str, Any] | None,
        delay: float,
        include_usage: bool,
        silent: bool,
        response_id: str,
        created: int,
        model: str,
        record: Callable[[int], None],
        entry: dict[str, Any],
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        head = json.dumps(
            {"id": response_id, "object": "chat.completion.chunk", "created": created, "model": model},
            ensure_ascii=False,
            separators=(",", ":"),
        )[:-1].encode()
        buffer: list[bytes] = []

        def chunk(delta: Mapping[str, Any], finish: str | None = None, extra: str = "") -> bytes:
            choice = json.dumps(
                {"index": 0, "delta": delta, "finish_reason": finish},
                ensure_ascii=False,
                separators=(",", ":"),
            )
            return b"".join(
                (b"data: ", head, b',"choices":[', choice.encode(), b"]", extra.encode(), b"}\n\n")
            )

        # the per-token chunks differ only in the piece: format them without a json.dumps per dict
        openers = {
            name: b"data: " + head + b',"choices":[{"index":0,"delta":{"' + name.encode() + b'":'
            for name in ("content", "reasoning_content")
        }
        closer = b'},"finish_reason":null}]}\n\n'

        def flush() -> None:
            if buffer:
                data = b"".join(buffer)
                buffer.clear()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

        def delta(field_name: str, piece: str) -> bytes:
            return openers[field_name] + json.dumps(piece, ensure_ascii=False).encode() + closer

        buffer.append(chunk({"role": "assistant", "content": ""}))
        new: list[_Delta] = [("reasoning_content", p) for p in emission.reasoning]
        new.extend(("content", p) for p in emission.content)
        before, pieces = _with_echo(new, echo, settings.echo_prefill)
        buffer.extend(delta(field_name, piece) for field_name, piece in before)
        kind = fault["type"] if fault else None
        after = int(fault["after_tokens"]) if fault and kind in ("cut", "stall") else -1
        every = settings.keepalive_every
        for index, (field_name, piece) in enumerate(pieces):
            if index == after:
                flush()
                if kind == "cut":
                    entry["finish_reason"] = None
                    entry["completion_tokens"] = index
                    record(200)
                    self._cut()
                    return
                time.sleep(float(fault["seconds"]) if fault else 0.0)
            if delay > 0:
                flush()
                time.sleep(delay)
            buffer.append(delta(field_name, piece))
            if every and (index + 1) % every == 0:
                buffer.append(b": keep-alive\n\n")
            if len(buffer) >= 64 or delay > 0:
                flush()
        if kind == "cut":  # after_tokens >= the pieces there were: cut before the final chunk
            flush()
            entry["finish_reason"] = None
            record(200)
            self._cut()
            return
        if kind == "stall" and after >= len(pieces):
            flush()
            time.sleep(float(fault["seconds"]) if fault else 0.0)
        if silent:  # a clean end of the body with no finish_reason, no usage, no [DONE]
            record(200)
            flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        usage_json = json.dumps(usage, separators=(",", ":"))
        if settings.usage_chunk == "last":
            buffer.append(chunk({}, emission.finish_reason, ',"usage":' + usage_json))
        else:
            buffer.append(chunk({}, emission.finish_reason))
            if include_usage:
                buffer.append(b"data: " + head + b',"choices":[],"usage":' + usage_json.encode() + b"}\n\n")
        record(200)
        buffer.append(b"data: [DONE]\n\n")
        flush()
        self.wfile.write(b"0\r\n\r\n")
