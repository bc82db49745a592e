"""Worker processes for the local store's multi-process tests (``test_local_store.py``): each opens
the state directory's bucket as a longform process does (moto's S3, the keys on disk) and works on
it through boto3. Module-level functions, so ``multiprocessing``'s spawn start method can run them."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BUCKET = "longform-local-jobs"


@contextlib.contextmanager
def open_bucket(root: str) -> Iterator[Any]:
    """A boto3 S3 client whose bucket ``BUCKET`` is the state directory ``root``'s."""
    import os
    from unittest import mock

    import boto3
    from moto import mock_aws

    from longform.local.aws import FAKE_CREDENTIALS, REGION
    from longform.local.disk_store import disk_backed_bucket
    from longform.local.state import StateDir

    with mock.patch.dict(os.environ, FAKE_CREDENTIALS), mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        with disk_backed_bucket(BUCKET, StateDir(Path(root)).disk):
            yield s3


def versioned_body(version: int, size: int) -> bytes:
    """A self-checking object: a reader can tell a whole one from a torn one."""
    pad = (f"{version:08d}" * (size // 8 + 1))[:size]
    digest = hashlib.sha256(pad.encode()).hexdigest()
    return json.dumps({"version": version, "pad": pad, "sha256": digest}).encode()


def check_body(data: bytes) -> int:
    """The version of a whole object (raises on a torn or corrupt one)."""
    doc = json.loads(data)
    if hashlib.sha256(doc["pad"].encode()).hexdigest() != doc["sha256"]:
        raise ValueError("torn object")
    return int(doc["version"])


def reader(root: str, key: str, reads: int, barrier: Any) -> dict[str, Any]:
    """GET ``key`` ``reads`` times; counts whole objects, misses, and anything else."""
    from botocore.exceptions import ClientError

    whole, missing, errors = 0, 0, []
    with open_bucket(root) as s3:
        barrier.wait()  # every process has opened the bucket: they start together
        for _ in range(reads):
            try:
                body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
                check_body(body)
                whole += 1
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "NoSuchKey":
                    errors.append(repr(exc))
                missing += 1
            except Exception as exc:  # a torn object, a closed file: what must never happen
                errors.append(repr(exc))
    return {"whole": whole, "missing": missing, "errors": errors}


def writer(root: str, key: str, versions: int, size: int, barrier: Any) -> int:
    """PUT ``versions`` versions of ``key``, deleting it after every third; how many PUTs."""
    with open_bucket(root) as s3:
        barrier.wait()  # every process has opened the bucket: they start together
        for version in range(versions):
            s3.put_object(Bucket=BUCKET, Key=key, Body=versioned_body(version, size))
            if version % 3 == 2:
                s3.delete_object(Bucket=BUCKET, Key=key)
    return versions


def incrementer(root: str, key: str, increments: int, barrier: Any) -> int:
    """Add 1 to the counter ``key`` ``increments`` times, each a read-modify-write with If-Match;
    how many PreconditionFailed answers it got (and retried)."""
    from botocore.exceptions import ClientError

    conflicts = 0
    with open_bucket(root) as s3:
        barrier.wait()  # every process has opened the bucket: they start together
        done = 0
        while done < increments:
            got = s3.get_object(Bucket=BUCKET, Key=key)
            value = int(got["Body"].read())
            try:
                s3.put_object(Bucket=BUCKET, Key=key, Body=str(value + 1).encode(), IfMatch=got["ETag"])
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "PreconditionFailed":
                    raise
                conflicts += 1
                continue
            done += 1
    return conflicts


def creator(root: str, keys: list[str], me: str, barrier: Any) -> list[str]:
    """Create every key with If-None-Match: *; the keys this process created."""
    from botocore.exceptions import ClientError

    won = []
    with open_bucket(root) as s3:
        barrier.wait()  # every process has opened the bucket: they start together
        for key in keys:
            try:
                s3.put_object(Bucket=BUCKET, Key=key, Body=me.encode(), IfNoneMatch="*")
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "PreconditionFailed":
                    raise
                continue
            won.append(key)
    return won
