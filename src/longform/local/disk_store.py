"""The local bucket on disk: every object of the jobs bucket is a file of the state directory, and
nothing else holds it (no in-memory copy that could diverge).

moto still answers the S3 API (the layer's boto3 calls, the state machine's ``ItemReader``, the
bucket's EventBridge notifications), but the bucket's key storage is this directory: moto's
``FakeBucket.keys`` (its ``_VersionedKeyStore``) is replaced by :class:`DiskKeyStore`, which reads a
key's bytes from disk on every lookup (a fresh ``FakeKey`` per read, so a reader never holds an
object a writer closes or replaces) and writes a new object as a temporary file renamed into place
(a PUT is atomic: a reader or a crash sees the old object or the new one, never half of one).

The S3 guarantees hold across processes: every request that writes a key (PUT, copy, DELETE, the
completion of a multipart upload) runs under an exclusive ``flock`` on the key's lock stripe, and
moto's own ``If-Match`` / ``If-None-Match`` check runs inside that lock against what is on disk
then. A failed write (``OSError``: a full disk, a read-only directory, an injected fault) fails
the request that made it with S3's own ``500 InternalError``, which botocore retries and the
handlers treat like any S3 error; nothing is recorded anywhere else.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote, unquote

from .store_faults import sigkill_hook_from_env

MAX_SEGMENT = 200  # characters of one key segment (file names: 255 bytes, after quoting)
TMP_PREFIX = ".tmp-"
LOCK_STRIPES = 256
STALE_TMP_SECONDS = 3600.0
CONTENT_TYPES = {
    ".json": "application/json",
    ".md": "text/markdown; charset=utf-8",
    ".jsonl": "application/jsonl",
}

# called with (operation, key) before each write reaches the disk ("put" / "delete"); it may raise
# an OSError (the write fails) or any BaseException (the process dies there): store_faults.py
WriteHook = Callable[[str, str], None]


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be kept on disk (None: it can)."""
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "has an empty, . or .. path segment"
    if any(p.startswith(TMP_PREFIX) for p in parts):
        return f"has a path segment starting with {TMP_PREFIX}"
    if any(len(quote(p, safe="")) > MAX_SEGMENT for p in parts):
        return f"has a path segment longer than {MAX_SEGMENT} characters"
    return None


class DiskBucket:
    """The objects of one bucket in a directory: ``<root>/<key, each segment URL-quoted>``."""

    def __init__(self, root: Path, locks: Path, *, fsync: bool = True):
        self.root = root
        self.locks = locks
        self.fsync = fsync
        self.write_hook: WriteHook | None = sigkill_hook_from_env()  # a real kill -9, for tests

    def path(self, key: str) -> Path:
        problem = key_problem(key)
        if problem:
            raise ValueError(f"object key {key!r} cannot be stored on disk: it {problem}")
        return self.root.joinpath(*(quote(p, safe="") for p in key.split("/")))

    # ---- the lock of a key (a stripe of LOCK_STRIPES files: flock, so it holds across processes) ----

    @contextlib.contextmanager
    def key_lock(self, key: str) -> Iterator[None]:
        stripe = int(hashlib.sha256(key.encode()).hexdigest(), 16) % LOCK_STRIPES
        self.locks.mkdir(parents=True, exist_ok=True)
        # a fresh open file description per holder: flock excludes other threads of this process too
        fd = os.open(self.locks / f"key-{stripe:03d}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    # ---- reads: no lock (a rename is atomic) ------------------------------------------------------

    def read(self, key: str) -> tuple[bytes, float] | None:
        """The object's bytes and modification time (None: no such object)."""
        try:
            path = self.path(key)
            with path.open("rb") as fh:  # an open file keeps its version, whatever replaces it
                mtime = os.fstat(fh.fileno()).st_mtime
                return fh.read(), mtime
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError):
            return None

    def exists(self, key: str) -> bool:
        try:
            return self.path(key).is_file()
        except ValueError:
            return False

    def list_keys(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix`` (walks only the directory the prefix names), sorted."""
        head, _, _ = prefix.rpartition("/")
        try:
            start = self.path(head) if head else self.root
        except ValueError:
            return []
        if not start.is_dir():
            return []
        found = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(TMP_PREFIX)]
            rel = Path(dirpath).relative_to(self.root)
            base = [unquote(p) for p in rel.parts]
            for name in filenames:
                if name.startswith(TMP_PREFIX):
                    continue
                key = "/".join([*base, unquote(name)])
                if key.startswith(prefix):
                    found.append(key)
        return sorted(found)

    # ---- writes: atomic (a temporary file renamed into place) ------------------------------------

    def write(self, key: str, data: bytes) -> None:
        path = self.path(key)
        if self.write_hook is not None:
            self.write_hook("put", key)
        for attempt in range(3):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX)
                break
            except FileNotFoundError:  # an empty directory removed by a concurrent delete
                if attempt == 2:
                    raise
        try:
            with os.fdopen(fd, "wb") as out:
                view = memoryview(data)
                while view:
                    written = out.write(view)
                    view = view[written:]
                out.flush()
                if self.fsync:
                    os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def delete(self, key: str) -> bool:
        """Remove the object (False: there was none); empty directories above it go too."""
        try:
            path = self.path(key)
        except ValueError:
            return False
        if not path.is_file():
            return False
        if self.write_hook is not None:
            self.write_hook("delete", key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        for parent in path.parents:  # drafts/ of a job whose drafts are all committed, ...
            if parent == self.root:
                break
            try:
                parent.rmdir()
            except OSError:
                break
        return True

    def remove_stale_temporaries(self, older_than: float = STALE_TMP_SECONDS) -> int:
        """Temporary files a killed writer left behind (never read as objects; one being written
        by another process right now is younger than ``older_than``); how many."""
        removed = 0
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - older_than
        for path in self.root.rglob(f"{TMP_PREFIX}*"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed


def _fake_key(bucket: str, key: str, data: bytes, mtime: float) -> Any:
    from moto.s3.models import FakeKey

    from .aws import ACCOUNT_ID, REGION

    fake = FakeKey(name=key, value=data, account_id=ACCOUNT_ID, region_name=REGION, bucket_name=bucket)
    fake.last_modified = datetime.datetime.fromtimestamp(mtime, tz=datetime.UTC).replace(tzinfo=None)
    content_type = CONTENT_TYPES.get(os.path.splitext(key)[1])
    if content_type:
        fake.set_metadata({"Content-Type": content_type})
    return fake


def _store_base() -> type:
    from moto.s3.utils import _VersionedKeyStore

    return _VersionedKeyStore


class DiskKeyStore(_store_base()):  # type: ignore[misc]
    """moto's key store of one unversioned bucket, kept on disk (the dict itself stays empty)."""

    def __init__(self, disk: DiskBucket, bucket: str):
        super().__init__()
        self.disk = disk
        self.bucket = bucket

    def _load(self, key: str) -> Any:
        found = self.disk.read(key)
        if found is None:
            raise KeyError(key)
        return _fake_key(self.bucket, key, *found)

    def __sgetitem__(self, key: str) -> list[Any]:
        return [self._load(key)]

    def __getitem__(self, key: str) -> Any:
        return self._load(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.disk.exists(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self.setlist(key, [value])

    def getlist(self, key: str, default: Any = None) -> Any:
        # the bucket is not versioned: no earlier version is kept, so moto's put_object (which asks
        # for the versions to keep beside the new one) reads nothing
        return default if default is not None else []

    def setlist(self, key: Any, list_: Any) -> None:
        versions = list_ if isinstance(list_, list | tuple) else [list_]
        if not versions:
            self.disk.delete(key)
            return
        latest = versions[-1]
        if not hasattr(latest, "value"):  # a delete marker: the bucket is not versioned
            self.disk.delete(key)
            return
        self.disk.write(key, bytes(latest.value))

    def pop(self, key: str, *default: Any) -> None:
        if not self.disk.delete(key) and not default:
            raise KeyError(key)

    def __delitem__(self, key: str) -> None:
        self.pop(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.disk.list_keys())

    def __len__(self) -> int:
        return len(self.disk.list_keys())

    def keys(self) -> list[str]:
        return self.disk.list_keys()

    def _self_iterable(self) -> dict[str, Any]:
        return dict.fromkeys(self.disk.list_keys())

    def _iteritems(self) -> Iterator[tuple[str, Any]]:
        for key in self.disk.list_keys():
            with contextlib.suppress(KeyError):  # deleted since it was listed
                yield key, self[key]

    def _itervalues(self) -> Iterator[Any]:
        for _, value in self._iteritems():
            yield value

    def _iterlists(self) -> Iterator[tuple[str, list[Any]]]:
        for key, value in self._iteritems():
            yield key, [value]

    items = iteritems = _iteritems
    lists = iterlists = _iterlists
    values = itervalues = _itervalues


INTERNAL_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    "<Message>We encountered an internal error. Please try again. (local store: {detail})</Message>"
    "<Key>{key}</Key></Error>"
)


def _internal_error(key: str, exc: OSError) -> tuple[int, dict[str, Any], bytes]:
    from xml.sax.saxutils import escape

    detail = f"{errno.errorcode.get(exc.errno or 0, 'EIO')}: {exc.strerror or exc}"
    body = INTERNAL_ERROR.format(detail=escape(detail), key=escape(key)).encode()
    return 500, {"Content-Type": "application/xml", "status": 500}, body


@contextlib.contextmanager
def disk_backed_bucket(bucket: str, disk: DiskBucket) -> Iterator[None]:
    """Inside ``mock_aws``, after ``create_bucket``: ``bucket``'s keys live in ``disk`` only."""
    from moto.s3.models import S3Backend, s3_backends
    from moto.s3.responses import S3Response

    from .aws import ACCOUNT_ID

    backend = s3_backends[ACCOUNT_ID]["aws"]
    backend.get_bucket(bucket).keys = DiskKeyStore(disk, bucket)
    real_key_response = S3Response._key_response
    real_list = S3Backend.list_objects
    real_get = S3Backend.get_object

    def get_object(
        self: Any,
        bucket_name: str,
        key_name: str,
        version_id: Any = None,
        part_number: Any = None,
        return_delete_marker: bool = False,
    ) -> Any:
        if bucket_name != bucket or version_id is not None or part_number:
            return real_get(self, bucket_name, key_name, version_id, part_number, return_delete_marker)
        found = disk.read(key_name)  # one read: there is no "exists, then read" for a delete to fall between
        return None if found is None else _fake_key(bucket, key_name, *found)

    def key_response(self: Any, request: Any, full_url: str) -> Any:
        bucket_name = self.parse_bucket_name_from_url(request, full_url)
        if bucket_name != bucket:
            return real_key_response(self, request, full_url)
        key = self.parse_key_name()
        writes = request.method in ("PUT", "POST", "DELETE")
        try:
            with disk.key_lock(key) if writes else contextlib.nullcontext():
                return real_key_response(self, request, full_url)
        except OSError as exc:  # the disk refused: the request fails, as S3's 500 does
            return _internal_error(key, exc)

    def list_objects(
        self: Any, fake_bucket: Any, prefix: str | None, delimiter: str | None, *args: Any, **kwargs: Any
    ) -> Any:
        if getattr(fake_bucket, "name", None) != bucket:
            return real_list(self, fake_bucket, prefix, delimiter, *args, **kwargs)
        # only the directory the prefix names is walked, and only the keys listed are read (a key
        # folded into a common prefix is not): listing jobs/ by "/" reads no object at all
        view = _PrefixView(fake_bucket, prefix or "", delimiter)
        return real_list(self, view, prefix, delimiter, *args, **kwargs)  # type: ignore[arg-type]

    with (
        mock.patch.object(S3Response, "_key_response", key_response),
        mock.patch.object(S3Backend, "list_objects", list_objects),
        mock.patch.object(S3Backend, "get_object", get_object),
    ):
        yield


class _PrefixView:
    """A bucket as ``list_objects`` sees it, its keys limited to a prefix (read lazily)."""

    def __init__(self, fake_bucket: Any, prefix: str, delimiter: str | None):
        self._bucket = fake_bucket
        self.keys = _PrefixKeys(fake_bucket.keys, prefix, delimiter)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bucket, name)


class _PrefixKeys:
    def __init__(self, store: DiskKeyStore, prefix: str, delimiter: str | None):
        self.store, self.prefix, self.delimiter = store, prefix, delimiter

    def items(self) -> Iterator[tuple[str, Any]]:
        for key in self.store.disk.list_keys(self.prefix):
            if self.delimiter and self.delimiter in key[len(self.prefix) :]:
                yield key, None  # becomes a common prefix: its object is never looked at
                continue
            with contextlib.suppress(KeyError):
                yield key, self.store[key]
