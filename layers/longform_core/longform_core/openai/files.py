"""OpenAI's Files API over the jobs bucket: a batch's input file, and its output and error files.

An uploaded file lives under its caller's own prefix, so a caller only ever reaches its own files
(another caller's id is a 404, as for an unknown one, like jobs)::

    openai-files/{owner digest}/{file_id}/meta.json   the file object (name, size, purpose, time)
    openai-files/{owner digest}/{file_id}/content     the bytes as uploaded

A batch's output and error files are not copies: ``file-out-{batch_id}`` and ``file-err-{batch_id}``
are the lines of the batch's ``output.jsonl`` without and with an ``error`` (OpenAI puts failed
requests in the error file), read when asked for, owned as the batch is.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from typing import Any

from pydantic import BaseModel

from ..errors import LongformError, Problem, RequestInvalid
from ..objects import JSON
from ..services import Services

FILES_PREFIX = "openai-files/"
OUTPUT_FILE = "file-out-"
ERROR_FILE = "file-err-"
FILE_ID_PATTERN = re.compile(r"^file-[0-9a-f]{24}$")
PURPOSES = frozenset({"batch"})
FILENAME_MAX = 255


class FileNotFound(LongformError):
    """No such file of this caller's."""

    def __init__(self, file_id: str):
        self.file_id = file_id
        super().__init__(f"No such File object: {file_id}")


class FileObject(BaseModel):
    """OpenAI's ``file`` object."""

    id: str
    object: str = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str = "processed"
    expires_at: int | None = None
    status_details: str | None = None


def owner_prefix(owner: str) -> str:
    return f"{FILES_PREFIX}{hashlib.sha256(owner.encode()).hexdigest()[:32]}/"


class FileStore:
    """The caller's uploaded files (``owner``: ``api.route_helpers.caller_owner``)."""

    def __init__(self, services: Services, owner: str):
        self.objects = services.store.objects
        self.prefix = owner_prefix(owner)

    def _key(self, file_id: str, name: str) -> str:
        if not FILE_ID_PATTERN.match(file_id):
            raise FileNotFound(file_id)
        return f"{self.prefix}{file_id}/{name}"

    def create(self, data: bytes, filename: str, purpose: str) -> FileObject:
        problems = []
        if purpose not in PURPOSES:
            problems.append(
                Problem("purpose", f"must be one of {', '.join(sorted(PURPOSES))}, got {purpose!r}")
            )
        if not data.strip():
            problems.append(Problem("file", "the file is empty"))
        if problems:
            raise RequestInvalid(problems)
        file = FileObject(
            id=f"file-{secrets.token_hex(12)}",
            bytes=len(data),
            created_at=int(time.time()),
            filename=(filename or "upload.jsonl")[:FILENAME_MAX],
            purpose=purpose,
        )
        self.objects.put(self._key(file.id, "content"), data, "application/octet-stream")
        self.objects.put(self._key(file.id, "meta.json"), file.model_dump_json().encode(), JSON)
        return file

    def get(self, file_id: str) -> FileObject:
        return FileObject.model_validate_json(self._read(self._key(file_id, "meta.json"), file_id))

    def content(self, file_id: str) -> bytes:
        self.get(file_id)  # the meta is written last: a file without it is not there yet
        return self._read(self._key(file_id, "content"), file_id)

    def delete(self, file_id: str) -> None:
        self.get(file_id)
        for name in ("meta.json", "content"):
            self.objects.delete(self._key(file_id, name))

    def list(self) -> list[FileObject]:
        files: list[FileObject] = []
        paginator = self.objects.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.objects.bucket, Prefix=self.prefix):
            for entry in page.get("Contents", []):
                if entry["Key"].endswith("/meta.json"):
                    file_id = entry["Key"][len(self.prefix) :].split("/", 1)[0]
                    try:
                        files.append(self.get(file_id))
                    except FileNotFound:
                        continue  # deleted meanwhile
        return sorted(files, key=lambda f: f.created_at, reverse=True)

    def _read(self, key: str, file_id: str) -> bytes:
        got = self.objects.get(key)
        if got is None:
            raise FileNotFound(file_id)
        return got[0]


def batch_file_id(batch_id: str, *, errors: bool) -> str:
    return f"{ERROR_FILE if errors else OUTPUT_FILE}{batch_id}"


def batch_of_file(file_id: str) -> tuple[str, bool] | None:
    """(batch id, whether it is the error file) of a batch's output or error file id."""
    for prefix, errors in ((OUTPUT_FILE, False), (ERROR_FILE, True)):
        if file_id.startswith(prefix):
            return file_id[len(prefix) :], errors
    return None


def split_output(output: bytes, *, errors: bool) -> bytes:
    """The lines of a batch's output.jsonl that succeeded (``errors`` False) or failed (True)."""
    kept = []
    for line in output.splitlines(keepends=True):
        if not line.strip():
            continue
        failed = json.loads(line).get("error") is not None
        if failed == errors:
            kept.append(line if line.endswith(b"\n") else line + b"\n")
    return b"".join(kept)


def output_file_object(batch_id: str, data: bytes, created_at: int, *, errors: bool) -> dict[str, Any]:
    return FileObject(
        id=batch_file_id(batch_id, errors=errors),
        bytes=len(data),
        created_at=created_at,
        filename=f"{batch_id}_{'error' if errors else 'output'}.jsonl",
        purpose="batch_output",
    ).model_dump()
