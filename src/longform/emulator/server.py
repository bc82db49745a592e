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
import socket
import sys
import threading
from collections import deque
from collections.abc import Mapping
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from longform.emulator.handler import CHAT_PATHS, MODEL_IDS, EmulatorHandler
from longform.emulator.prefix_cache import PrefixCache
from longform.emulator.settings import EmulatorSettings, Fault, check_fault

__all__ = ["CHAT_PATHS", "MODEL_IDS", "EmulatorServer", "EmulatorSettings"]

MAX_LOG = 10_000


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512  # benchmarks open hundreds of connections at once

    def __init__(self, address: tuple[str, int], emulator: EmulatorServer) -> None:
        self.emulator = emulator
        super().__init__(address, EmulatorHandler)

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
