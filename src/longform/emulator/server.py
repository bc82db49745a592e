"""The emulator's HTTP server on loopback: ``EmulatorServer``.

It serves ``POST {base_url}/chat/completions`` (the request planned by
``longform.emulator.protocol``, the reply sent by ``longform.emulator.sse``) and
``GET {base_url}/models``, and holds the settings, the fault queue, the request log and
the prefix cache. It is controlled in process (``configure``, ``inject``, ``reset``,
``requests``) or over HTTP (``/_emulator/config``, ``/_emulator/faults``,
``/_emulator/reset``, ``/_emulator/requests``, ``/_emulator/health``,
``/_emulator/concurrency``). It counts the chat requests in flight (``concurrency``: the current
number and the largest seen since the last ``reset``), so a test can assert that a batch never had
more requests at the provider at once than its cap allowed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from longform.emulator.errors import ErrorReply, auth_error, error_body, fault_error
from longform.emulator.prefix_cache import PrefixCache
from longform.emulator.protocol import ReplyPlan, log_entry, plan_reply
from longform.emulator.settings import EmulatorSettings, ErrorBodyStyle, Fault, check_fault
from longform.emulator.sse import send_json_reply, send_stream

__all__ = ["CHAT_PATHS", "MODEL_IDS", "EmulatorServer", "EmulatorSettings"]

CHAT_PATHS = ("/v1/openai/chat/completions", "/v1/chat/completions")
MODEL_PATHS = ("/v1/openai/models", "/v1/models")
MODEL_IDS = ("longform/emulator", "longform/emulator-reasoning", "longform/emulator-thinking")
MAX_LOG = 10_000


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
        self._faults: deque[Fault] = deque()
        self._log: list[dict[str, Any]] = []
        self._prefix_cache = PrefixCache()
        self._asked: set[str] = set()  # answers so far seen in a continue message (continue_repeat)
        self._in_flight = 0
        self._max_in_flight = 0
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
        """Queue faults; each is consumed by the next chat request (FIFO). A fault with ``match``
        is for the requests whose body holds that text only (other requests pass it by), and
        with ``skip`` it lets that many of them through first: a test can aim a fault at the
        nth request of one job among many running at once."""
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
            self._prefix_cache.clear()
            self._asked.clear()
            self._max_in_flight = self._in_flight

    @property
    def concurrency(self) -> dict[str, int]:
        """Chat requests in flight now (``current``) and the most at once since the last reset (``max``)."""
        with self._lock:
            return {"current": self._in_flight, "max": self._max_in_flight}

    def reset_concurrency(self) -> None:
        """Start counting the largest concurrency afresh (the requests in flight stay counted)."""
        with self._lock:
            self._max_in_flight = self._in_flight

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

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _first_ask(self, key: str) -> bool:
        with self._lock:
            if key in self._asked:
                return False
            self._asked.add(key)
            return True

    def _pop_fault(self, body: str = "") -> Fault | None:
        """The fault for a request with this body: the first queued one aimed at it (or at any)."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                match = fault.get("match")
                if match is not None and match not in body:
                    continue
                if fault.get("skip", 0) > 0:
                    fault["skip"] -= 1
                    return None
                del self._faults[index]
                return fault
            return None

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._log.append(entry)
            if len(self._log) > MAX_LOG:
                del self._log[: len(self._log) - MAX_LOG]

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


class _Handler(BaseHTTPRequestHandler):
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
