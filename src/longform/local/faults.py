"""Faults for tests and benchmarks that the emulator cannot cause: the chunk invocation itself dying.

``kill_mid_stream`` kills the chunk function while it streams, once it has received a number of
tokens, as the Lambda runtime would (out of memory, a crash): ``lambda_runtime.InvocationKilled``
is raised from inside the stream, after any draft checkpoint due at that token was saved, so
nothing of the handler runs after it and Lambda reports ``Runtime.ExitError``.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from .lambda_runtime import InvocationKilled


@dataclass
class Kills:
    """What ``kill_mid_stream`` did: the tokens each killed invocation had received."""

    at_tokens: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def count(self) -> int:
        return len(self.at_tokens)


@contextlib.contextmanager
def kill_mid_stream(
    after_tokens: int, *, times: int = 1, from_stream: int = 1, match: str | None = None
) -> Iterator[Kills]:
    """Kill the next ``times`` chunk invocations that stream ``after_tokens`` tokens, counting from
    the ``from_stream``-th request to the provider (1: the first); with ``match``, only requests
    whose messages hold that text count (one job among many running at once)."""
    from longform_core.provider import ProviderClient

    kills = Kills()
    real_chat = ProviderClient.chat
    streams = [0]

    def chat(self: ProviderClient, body: dict[str, Any], **kwargs: Any) -> Any:
        on_progress = kwargs.pop("on_progress", None)
        if match is not None and match not in json.dumps(body.get("messages"), ensure_ascii=False):
            return real_chat(self, body, on_progress=on_progress, **kwargs)
        with kills._lock:
            streams[0] += 1
            armed = streams[0] >= from_stream

        def progress(update: Any) -> None:
            if on_progress is not None:
                on_progress(update)
            if armed and update.deltas >= after_tokens:
                with kills._lock:
                    if kills.count < times:
                        kills.at_tokens.append(update.deltas)
                        raise InvocationKilled(f"killed after {update.deltas} tokens")

        return real_chat(self, body, on_progress=progress, **kwargs)

    with mock.patch.object(ProviderClient, "chat", chat):
        yield kills
