"""Local state on disk: the local cloud's bucket in a directory, shared by every longform process.

Layout of the state directory (default: the platform's per-user data directory, e.g.
``~/.local/share/longform`` on Linux, as ``platformdirs.user_data_dir("longform")`` names it;
``--state-dir`` or ``LONGFORM_STATE_DIR`` override it)::

    bucket/<key>          every object of the local jobs bucket, and its only copy (disk_store.py)
    locks/key-NNN.lock    flock stripes: a write to a key (and its If-Match check) holds its stripe
    leases/<name>.lock    flock per execution name (a job id, a batch id): the one process that
                          drives that job; a dead process's lease is released by the kernel
    runs/<job id>.json    how a local job was started (provider, model, emulator settings), so
                          ``longform resume`` continues it with the same options

Any number of processes (``run``, ``resume``, ``batch``, ``serve``, ``drop``, ``list``, ``show``) use
one state directory at once: objects are written atomically under a per-key lock, and each job is
driven by one process at a time (its lease). Step Functions executions live in the memory of the
process that runs them: ``longform resume`` (and ``serve`` at start) starts a new execution of the
same state machine for a job that did not end; its first chunk continues from the last commit, or
from the draft of the chunk in flight.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from .disk_store import TMP_PREFIX, DiskBucket, key_problem

if TYPE_CHECKING:
    from .run_record import RunRecord

__all__ = ["DiskBucket", "Leases", "StateDir", "StateDirBusy", "default_state_dir", "key_problem"]

APP_NAME = "longform"


class StateDirBusy(RuntimeError):
    """Another longform process drives this job (its lease is held)."""


def default_state_dir() -> Path:
    """``LONGFORM_STATE_DIR``, else the platform's per-user data directory for longform."""
    env = os.environ.get("LONGFORM_STATE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


class Leases:
    """One flock per execution name under ``leases/``: held by the process that runs it."""

    def __init__(self, root: Path):
        self.dir = root / "leases"
        self._held: dict[str, int] = {}
        self._guard = threading.Lock()

    def _path(self, name: str) -> Path:
        if key_problem(name) or "/" in name:
            raise ValueError(f"not a lease name: {name!r}")
        return self.dir / f"{name}.lock"

    def held_here(self, name: str) -> bool:
        with self._guard:
            return name in self._held

    def acquire(self, name: str, note: str) -> bool:
        """Take the lease of ``name`` (True), or False when another process holds it."""
        with self._guard:
            if name in self._held:
                return True
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path(name), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return False
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} ({note})".encode(), 0)
            self._held[name] = fd
            return True

    def release(self, name: str) -> None:
        with self._guard:
            fd = self._held.pop(name, None)
        if fd is not None:
            os.close(fd)

    def release_all(self) -> None:
        with self._guard:
            held, self._held = list(self._held.values()), {}
        for fd in held:
            with contextlib.suppress(OSError):
                os.close(fd)

    def holder(self, name: str) -> str | None:
        """Who holds the lease of ``name`` (None: nobody, or this process)."""
        if self.held_here(name):
            return None
        try:
            fd = os.open(self._path(name), os.O_RDONLY)
        except (FileNotFoundError, ValueError):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
            return text or "another longform process"
        finally:
            os.close(fd)
        return None


class StateDir:
    """One state directory: the bucket's objects, the locks, the leases, the runs."""

    def __init__(self, root: Path, *, fsync: bool = True):
        self.root = root
        self.bucket_dir = root / "bucket"
        self.runs_dir = root / "runs"
        self.disk = DiskBucket(self.bucket_dir, root / "locks", fsync=fsync)
        self.leases = Leases(root)

    # ---- objects (read straight from disk: no moto, works beside any other process) -------------

    def objects(self) -> Iterator[tuple[str, Path]]:
        """(key, path) of every stored object."""
        if not self.bucket_dir.is_dir():
            return
        for path in sorted(self.bucket_dir.rglob("*")):
            if path.is_file() and not path.name.startswith(TMP_PREFIX):
                rel = path.relative_to(self.bucket_dir)
                yield "/".join(unquote(p) for p in rel.parts), path

    def object_path(self, key: str) -> Path:
        """Where the object ``key`` is kept on disk."""
        return self.disk.path(key)

    def read_object(self, key: str) -> bytes | None:
        found = self.disk.read(key)
        return None if found is None else found[0]

    def write_object(self, key: str, data: bytes) -> None:
        """Write one object as the bucket would (atomic, under the key's lock)."""
        with self.disk.key_lock(key):
            self.disk.write(key, data)

    def delete_object(self, key: str) -> None:
        with self.disk.key_lock(key):
            self.disk.delete(key)

    # ---- runs -----------------------------------------------------------------------------------

    def save_run(self, job_id: str, record: RunRecord) -> None:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        path = self.runs_dir / f"{job_id}.json"
        tmp = self.runs_dir / f"{TMP_PREFIX}{job_id}.{os.getpid()}.{threading.get_ident()}"
        tmp.write_text(record.model_dump_json(indent=1), encoding="utf-8")
        os.replace(tmp, path)

    def load_run(self, job_id: str) -> RunRecord | None:
        """How the job was started (``run_record.py``); None for a job started otherwise (the API)."""
        from .run_record import RunRecord  # here: the record's provider imports are not every command's

        try:
            raw = (self.runs_dir / f"{job_id}.json").read_bytes()
        except FileNotFoundError:
            return None
        return RunRecord.parse(raw)

    # ---- jobs -----------------------------------------------------------------------------------

    def job_ids(self) -> list[str]:
        jobs = self.bucket_dir / "jobs"
        if not jobs.is_dir():
            return []
        return [unquote(p.name) for p in jobs.iterdir() if (p / "manifest.json").is_file()]
