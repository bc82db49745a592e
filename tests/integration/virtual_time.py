"""Virtual time for the deadline tests: an invocation's deadline reached by the provider's pace,
never by how fast this machine is.

A :class:`VirtualClock` moves only when told. :func:`virtual_time` hands it to everything that
measures an invocation: the local Lambda runtime (the context's remaining time, the duration it
compares with the timeout), the services (the chunk's deadline) and the provider client (the
stream's deadline checks). The clock moves by ``seconds_per_delta`` each time a streamed delta
reaches the reader: a provider at 20 tokens/s is 0.05 s a delta, whatever the emulator's real speed.
A chunk then reaches its deadline after exactly ``(timeout - margin) / seconds_per_delta`` deltas,
whether the machine is idle or at load 20, and the work between two deltas (the handler's reads,
the commit after the cut) takes no virtual time, so a slow machine cannot eat the margin.

Moved by the reader, not by the emulator's pauses: the emulator writes ahead of the reader into the
socket's buffers, so a clock it moved would reach the deadline hundreds of tokens before the reader
had them, and keep moving after the reader stopped.

What stays in real seconds: the socket timeouts and the silent-stream watchdog, set from the
virtual time left (``deadline - clock()``); a test keeps them far from anything it waits for.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from longform.local.cloud import LocalCloud


class VirtualClock:
    """A monotonic clock (seconds) that moves only by :meth:`advance`."""

    def __init__(self, start: float = 1_000.0):
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += max(0.0, seconds)


@contextlib.contextmanager
def virtual_time(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch, *, seconds_per_delta: float
) -> Iterator[VirtualClock]:
    """``cloud``'s invocations on a :class:`VirtualClock` that each streamed delta moves on by
    ``seconds_per_delta`` (0: it never moves; only the real-time watchdog can end a stream)."""
    from longform_core import runtime

    clock = VirtualClock()
    real_build_provider = runtime.build_provider

    def build_provider(settings: Any, *args: Any, **kwargs: Any) -> Any:
        client = real_build_provider(settings, clock=clock)
        real_chat = client.chat

        def chat(body: dict[str, Any], *, on_progress: Any = None, **options: Any) -> Any:
            seen = 0

            def progress(update: Any) -> None:
                nonlocal seen
                clock.advance(seconds_per_delta * (update.deltas - seen))  # a retry starts at 0
                seen = update.deltas
                if on_progress is not None:
                    on_progress(update)

            return real_chat(body, on_progress=progress, **options)

        client.chat = chat
        return client

    monkeypatch.setattr(runtime, "build_provider", build_provider)
    runtime.reset_services()  # built afresh, with the clock, for this cloud's handlers
    monkeypatch.setattr(runtime.get_services(), "clock", clock)
    monkeypatch.setattr(cloud.runtime, "clock", clock)
    yield clock
