"""Faults of the local store, for tests and benchmarks: a ``DiskBucket.write_hook`` that counts every
write (a PUT or a DELETE that reaches the disk) and fails or kills at chosen ones.

- ``fail_nth``: the n-th write fails once (``EIO``): botocore retries it, as it retries S3's 500.
- ``fail_after``: every write after the n-th fails (``EIO``): a disk gone bad, a directory gone
  read-only.
- ``full_after``: every PUT after the n-th fails with ``ENOSPC`` (a full disk; a DELETE still
  works, it frees space).
- ``kill_at``: the process dies at the n-th write, before it reaches the disk: that write and every
  later one raise ``StoreKilled`` (a ``BaseException``, as ``lambda_runtime.InvocationKilled``), so
  nothing this "process" does afterwards reaches the disk, as nothing a dead one does would.

Counting is 1-based and across the whole cloud (every thread): ``writes`` lists (operation, key)
of the writes that were attempted, in order.

A real kill, for a test that runs ``longform`` as a process: with ``LONGFORM_FAULT_SIGKILL_AT`` set
to ``TEXT:N`` (see :func:`sigkill_hook_from_env`), the process sends itself SIGKILL at the N-th
write whose key contains TEXT, before that write reaches the disk: no handler, no ``finally``, no
flush runs, as with ``kill -9`` or the OOM killer.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .lambda_runtime import InvocationKilled


class StoreKilled(InvocationKilled):
    """The process died at a write of the local store (a kill -9 there)."""


@dataclass
class StoreFaults:
    fail_nth: int | None = None
    fail_after: int | None = None
    full_after: int | None = None
    kill_at: int | None = None
    writes: list[tuple[str, str]] = field(default_factory=list)
    dead: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, operation: str, key: str) -> None:
        with self._lock:
            if self.dead:
                raise StoreKilled(f"the process died before this write ({operation} {key})")
            self.writes.append((operation, key))
            n = len(self.writes)
            if self.kill_at is not None and n >= self.kill_at:
                self.dead = True
                raise StoreKilled(f"killed at write {n} ({operation} {key})")
        if self.fail_nth is not None and n == self.fail_nth:
            raise OSError(errno.EIO, f"Input/output error (injected at write {n})")
        if self.fail_after is not None and n > self.fail_after:
            raise OSError(errno.EIO, f"Input/output error (injected after write {self.fail_after})")
        if self.full_after is not None and n > self.full_after and operation == "put":
            raise OSError(errno.ENOSPC, "No space left on device")


SIGKILL_ENV = "LONGFORM_FAULT_SIGKILL_AT"


def sigkill_hook_from_env() -> Callable[[str, str], None] | None:
    """The write hook ``LONGFORM_FAULT_SIGKILL_AT=TEXT:N`` asks for (None when unset): SIGKILL at the
    N-th write (PUT or DELETE) whose key contains TEXT (``drafts/``, ``chunks/``, ``result.json``)."""
    spec = os.environ.get(SIGKILL_ENV)
    if not spec:
        return None
    text, _, count = spec.rpartition(":")
    at = int(count)
    seen = 0
    lock = threading.Lock()

    def hook(operation: str, key: str) -> None:
        nonlocal seen
        if text not in key:
            return
        with lock:
            seen += 1
            if seen == at:
                os.kill(os.getpid(), signal.SIGKILL)

    return hook
