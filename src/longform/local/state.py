"""Local state on disk: the local cloud's bucket in a directory, so jobs survive the process.

Layout of the state directory (default ``.longform/`` in the working directory, ``--state-dir``)::

    bucket/<key>          every object of the local jobs bucket, written through as moto stores it
    runs/<job id>.json    how a local job was started (provider, model, emulator settings), so
                          ``longform resume`` continues it with the same options
    lock                  held (flock) by the one process that runs jobs on this state

Every PUT and DELETE the local bucket takes is mirrored to ``bucket/`` before the S3 call returns
(a temporary file renamed into place: a kill never leaves half an object), so what is on disk is
always a state the durability protocol knows how to continue from (``job_store.py``). At start the
objects are loaded back into moto before any event rule exists, so nothing is triggered again.
Step Functions executions live in memory only: ``longform resume`` (and ``serve`` at start) starts
a new execution of the same state machine for a job that did not end; its first chunk continues
from the last commit, or from the draft of the chunk in flight.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote, unquote

DEFAULT_STATE_DIR = ".longform"


class StateDirBusy(RuntimeError):
    """Another longform process runs jobs on this state directory."""


def default_state_dir() -> Path:
    return Path(os.environ.get("LONGFORM_STATE_DIR") or DEFAULT_STATE_DIR)


MAX_SEGMENT = 200  # characters of one key segment (file names: 255 bytes, after quoting)


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be kept on disk (None: it can)."""
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "has an empty, . or .. path segment"
    if any(len(quote(p, safe="")) > MAX_SEGMENT for p in parts):
        return f"has a path segment longer than {MAX_SEGMENT} characters"
    return None


def _key_path(root: Path, key: str) -> Path:
    problem = key_problem(key)
    if problem:
        raise ValueError(f"object key {key!r} cannot be stored on disk: it {problem}")
    parts = key.split("/")
    return root.joinpath(*(quote(p, safe="") for p in parts))


class StateDir:
    """One state directory: the bucket's objects, the runs, the lock."""

    def __init__(self, root: Path):
        self.root = root
        self.bucket_dir = root / "bucket"
        self.runs_dir = root / "runs"
        self._lock_file: Any = None

    # ---- the lock -------------------------------------------------------------------------------

    def lock(self) -> None:
        """Take the state for this process (``StateDirBusy`` when another process has it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / "lock", "a+")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StateDirBusy(
                f"the state directory {self.root} is in use by {holder}; wait for it, stop it, "
                "or pass another --state-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"longform pid {os.getpid()}")
        handle.flush()
        self._lock_file = handle

    def unlock(self) -> None:
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    # ---- objects --------------------------------------------------------------------------------

    def write_object(self, key: str, data: bytes) -> None:
        path = _key_path(self.bucket_dir, key)
        for attempt in range(3):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
                break
            except FileNotFoundError:  # an empty directory removed by a concurrent delete
                if attempt == 2:
                    raise
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def delete_object(self, key: str) -> None:
        try:
            path = _key_path(self.bucket_dir, key)
            path.unlink()
        except (FileNotFoundError, ValueError):
            return
        for parent in path.parents:  # drafts/ of a job whose drafts are all committed, ...
            if parent == self.bucket_dir:
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def objects(self) -> Iterator[tuple[str, Path]]:
        """(key, path) of every stored object."""
        if not self.bucket_dir.is_dir():
            return
        for path in sorted(self.bucket_dir.rglob("*")):
            if path.is_file() and not path.name.startswith(".tmp-"):
                rel = path.relative_to(self.bucket_dir)
                yield "/".join(unquote(p) for p in rel.parts), path

    def object_path(self, key: str) -> Path:
        """Where the object ``key`` is kept on disk."""
        return _key_path(self.bucket_dir, key)

    def read_object(self, key: str) -> bytes | None:
        try:
            return _key_path(self.bucket_dir, key).read_bytes()
        except (FileNotFoundError, ValueError):
            return None

    # ---- runs -----------------------------------------------------------------------------------

    def save_run(self, job_id: str, options: dict[str, Any]) -> None:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        path = self.runs_dir / f"{job_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(options, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, path)

    def load_run(self, job_id: str) -> dict[str, Any] | None:
        try:
            data = json.loads((self.runs_dir / f"{job_id}.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None

    # ---- jobs, read from disk (no moto: for list and show, also while another process runs) ----

    def job_ids(self) -> list[str]:
        jobs = self.bucket_dir / "jobs"
        if not jobs.is_dir():
            return []
        return [p.name for p in jobs.iterdir() if (p / "manifest.json").is_file()]


@contextlib.contextmanager
def mirrored_bucket(state: StateDir, bucket: str) -> Iterator[None]:
    """Mirror every PUT and DELETE of ``bucket`` in moto to ``state`` (inside ``mock_aws``)."""
    from moto.s3.models import S3Backend

    real_put, real_delete = S3Backend.put_object, S3Backend.delete_object
    # one lock around moto's write and the disk's: two writers of one key (a cancel and a chunk's
    # commit on the manifest) land on disk in the order moto took them
    lock = threading.Lock()

    def put_object(
        self: Any, bucket_name: str, key_name: str, value: bytes, *args: Any, **kwargs: Any
    ) -> Any:
        if bucket_name != bucket:
            return real_put(self, bucket_name, key_name, value, *args, **kwargs)
        with lock:
            key = real_put(self, bucket_name, key_name, value, *args, **kwargs)
            state.write_object(key_name, bytes(key.value))
        return key

    def delete_object(self: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        if bucket_name != bucket:
            return real_delete(self, bucket_name, key_name, *args, **kwargs)
        with lock:
            result = real_delete(self, bucket_name, key_name, *args, **kwargs)
            state.delete_object(key_name)
        return result

    with (
        mock.patch.object(S3Backend, "put_object", put_object),
        mock.patch.object(S3Backend, "delete_object", delete_object),
    ):
        yield


def load_bucket(state: StateDir, bucket: str) -> int:
    """Put every object on disk back into moto's ``bucket`` (no notifications); how many."""
    from moto.s3.models import s3_backends

    from .aws import ACCOUNT_ID

    backend = s3_backends[ACCOUNT_ID]["aws"]
    count = 0
    for key, path in state.objects():
        backend.put_object(bucket, key, path.read_bytes(), disable_notification=True)
        count += 1
    return count
