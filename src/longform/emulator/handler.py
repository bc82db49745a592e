"""The emulator's HTTP request handler: routing, the chat and completion replies.

One ``EmulatorHandler`` per connection (``http.server``'s model); it reads the request, asks
``longform.emulator.protocol`` for a plan, and is the reply's ``sse.Channel`` (``send_headers``,
``write``, ``cut``, ``record``). The state it reads and changes (settings, faults, the request log,
the prefix cache) lives on ``EmulatorServer`` (``server.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from longform.emulator.completions import (
    COMPLETION_PATHS,
    TEMPLATES,
    chat_body_of,
    completion_chunks,
    completion_json,
)
from longform.emulator.errors import ErrorReply, auth_error, error_body, fault_error
from longform.emulator.protocol import ReplyPlan, log_entry, plan_reply
from longform.emulator.settings import EmulatorSettings, ErrorBodyStyle
from longform.emulator.sse import send_json_reply, send_stream

if TYPE_CHECKING:
    from longform.emulator.server import EmulatorServer, _HTTPServer

__all__ = ["CHAT_PATHS", "MODEL_IDS", "MODEL_PATHS", "EmulatorHandler"]

CHAT_PATHS = ("/v1/openai/chat/completions", "/v1/chat/completions")
MODEL_PATHS = ("/v1/openai/models", "/v1/models")
MODEL_IDS = ("longform/emulator", "longform/emulator-reasoning", "longform/emulator-thinking")


class EmulatorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "longform-emulator/0.1"
    server: _HTTPServer
    _entry: dict[str, Any]
    _recorded: bool

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

    def send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
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
        self.send_json(status, error_body(status, message, style), headers)

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
            self.send_json(
                200,
                {
                    "status": "ok",
                    "base_url": emu.base_url,
                    "settings": settings.to_dict(),
                    "pending_faults": len(emu.pending_faults),
                    "requests": len(emu.requests),
                    "concurrency": emu.concurrency,
                },
            )
        elif path == "/_emulator/concurrency":
            self.send_json(200, emu.concurrency)
        elif path == "/_emulator/requests":
            self.send_json(200, {"requests": emu.requests})
        elif path == "/_emulator/config":
            self.send_json(200, {"settings": settings.to_dict()})
        elif path == "/props" and settings.completions != "off":
            template = TEMPLATES[settings.completions]
            self.send_json(200, {"chat_template": template, "bos_token": "", "eos_token": "<|im_end|>"})
        elif path in MODEL_PATHS:
            created = 1_700_000_000
            models = [
                {"id": m, "object": "model", "created": created, "owned_by": "longform"} for m in MODEL_IDS
            ]
            self.send_json(200, {"object": "list", "data": models})
        else:
            self._send_error_json(404, f"not found: {path}", settings.error_body)

    def _post(self) -> None:
        path = self._path()
        raw = self._read_body()
        if path in CHAT_PATHS:
            self._chat(raw)
            return
        settings = self.emulator.settings
        if path in COMPLETION_PATHS and settings.completions != "off":
            self._completion(raw)
            return
        if path not in ("/_emulator/config", "/_emulator/faults", "/_emulator/reset"):
            self._send_error_json(404, f"not found: {path}", settings.error_body)
            return
        try:
            body: Any = json.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            if path == "/_emulator/config":
                new = self.emulator.configure(**body)
                self.send_json(200, {"settings": new.to_dict()})
            elif path == "/_emulator/faults":
                faults = body.get("faults", [])
                if not isinstance(faults, list):
                    raise ValueError("'faults' must be a list")
                self.emulator.inject(*faults)
                self.send_json(200, {"pending_faults": len(self.emulator.pending_faults)})
            else:
                self.emulator.reset()
                self.send_json(200, {"settings": self.emulator.settings.to_dict()})
        except ValueError as error:  # JSONDecodeError is a ValueError
            self._send_error_json(400, f"invalid request: {error}", settings.error_body)

    # chat completions ----------------------------------------------------------
    # the handler is the reply's ``sse.Channel``; ``_entry`` is this request's log entry

    def _chat(self, raw: bytes) -> None:
        settings = self.emulator.settings
        self._entry = log_entry(self._path())
        self._recorded = False
        self.emulator._enter()
        try:
            reply = self._plan(raw, settings)
            if isinstance(reply, ErrorReply):
                self.record(reply.status)
                self.send_json(reply.status, reply.payload(settings.error_body), reply.headers)
            elif reply.stream:
                send_stream(reply, self)
            else:
                send_json_reply(reply, self)
        finally:
            self.emulator._leave()
            if not self._recorded:  # the client went away before the reply was sent
                self._entry["disconnected"] = True
                self.record(self._entry["status"] or 499)

    def _completion(self, raw: bytes) -> None:
        """A raw completion: the prompt read back into a conversation, its continuation sent as
        ``text_completion`` (``completions.py``); faults and the API key as for chat."""
        settings = dataclasses.replace(self.emulator.settings, prefill_style="assistant", echo_prefill="off")
        self._entry = log_entry(self._path())
        self._recorded = False
        self.emulator._enter()
        try:
            chat = chat_body_of(raw)
            reply = chat if isinstance(chat, ErrorReply) else self._plan(chat, settings)
            if isinstance(reply, ErrorReply):
                self.record(reply.status)
                self.send_json(reply.status, reply.payload(settings.error_body), reply.headers)
            elif reply.stream:
                self.send_headers(200, (("Content-Type", "text/event-stream"), ("Connection", "close")))
                self.close_connection = True
                for event in completion_chunks(reply):
                    self.write(event)
                self.record(finish_reason=reply.finish_reason)
            else:
                self.record(finish_reason=reply.finish_reason)
                self.send_json(200, completion_json(reply))
        finally:
            self.emulator._leave()
            if not self._recorded:
                self._entry["disconnected"] = True
                self.record(self._entry["status"] or 499)

    def _plan(self, raw: bytes, settings: EmulatorSettings) -> ReplyPlan | ErrorReply:
        """The API key checked, the next fault taken (a "status" one answers), the request planned."""
        error = auth_error(settings, self.headers.get("Authorization", ""))
        if error is not None:
            return error
        fault = self.emulator._pop_fault(raw.decode("utf-8", "replace"))
        self._entry["fault"] = fault
        error = fault_error(fault)
        if error is not None:
            return error
        emulator = self.emulator
        return plan_reply(
            raw, settings, fault, emulator._prefix_cache.cached_tokens, self._entry, emulator._first_ask
        )

    def record(self, status: int = 200, **fields: Any) -> None:
        """Set the status (and ``fields``) of this request's log entry; logs it the first time."""
        self._entry.update(fields)
        self._entry["status"] = status
        if not self._recorded:
            self._recorded = True
            self.emulator._record(self._entry)

    def send_headers(self, status: int, headers: Sequence[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()

    def write(self, data: bytes) -> None:
        self.wfile.write(data)

    def cut(self) -> None:
        """Drop the connection abruptly: no final chunk, no [DONE], no terminating chunk."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        self.connection.close()
