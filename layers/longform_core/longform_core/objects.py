"""The S3 object layer under every store: one bucket, the few operations the stores are made of.

``JobStore`` (``job_store.py``), ``BatchStore`` (``batch/store.py``) and the drop folders' answers
(``results.py``) build their keys and their models; the reads and writes, and the reading of S3's
answers (a missing key, a conditional write that lost), are here once::

    get            the bytes and ETag of a key, None when it is not there
    put            a write; ``if_match`` / ``if_none_match`` make it conditional (``WriteConflict``)
    put_if_new     a write only when the key does not exist yet (False: it did)
    read_capped    the first existing key of several, read at most ``cap`` bytes
    presign        a presigned GET
    copy, delete   server-side copy, delete
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

JSON = "application/json"


class WriteConflict(Exception):
    """A conditional write (If-Match / If-None-Match) that lost: the stores say what it means."""


@dataclass(frozen=True)
class CappedObject:
    """An object read up to a size cap (``data`` None: larger than the cap, not read)."""

    key: str
    size: int
    etag: str | None
    data: bytes | None


class Objects:
    """The bucket's objects: get, put (plain or conditional), capped read, presign, copy, delete."""

    def __init__(self, s3: S3Client, bucket: str):
        self.s3 = s3
        self.bucket = bucket

    def get(self, key: str) -> tuple[bytes, str] | None:
        """The bytes and ETag of ``key``; None when there is no such key."""
        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if is_missing(exc):
                return None
            raise
        return obj["Body"].read(), obj["ETag"]

    def get_text(self, key: str) -> str | None:
        got = self.get(key)
        return None if got is None else got[0].decode("utf-8")

    def put(
        self,
        key: str,
        body: bytes,
        content_type: str,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """Write ``key``; returns the new ETag. Conditional when asked: ``WriteConflict`` when it lost."""
        kwargs: dict[str, Any] = {}
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        try:
            resp = self.s3.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, **kwargs
            )
        except ClientError as exc:
            if kwargs and is_precondition_failure(exc):
                raise WriteConflict(f"{key}: changed under this write") from exc
            raise
        return resp["ETag"]

    def put_if_new(self, key: str, body: bytes, content_type: str) -> bool:
        """Write ``key`` unless it exists; False when it did (nothing written)."""
        try:
            self.put(key, body, content_type, if_none_match=True)
        except WriteConflict:
            return False
        return True

    def read_capped(self, keys: tuple[str, ...], cap: int) -> CappedObject | None:
        """The first of ``keys`` that exists, reading at most ``cap`` bytes; None when none exists."""
        for key in keys:
            try:
                obj = self.s3.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if is_missing(exc):
                    continue
                raise
            body = obj["Body"]
            try:
                size = int(obj.get("ContentLength", 0))
                data = body.read(cap + 1) if size <= cap else None
            finally:
                body.close()
            if data is not None and len(data) > cap:  # ContentLength understated: still capped
                size, data = len(data), None
            etag = obj.get("ETag")
            return CappedObject(key=key, size=size, etag=str(etag).strip('"') if etag else None, data=data)
        return None

    def presign(self, key: str, *, content_type: str, expires_in: int) -> str:
        """A presigned GET of ``key``, answered with ``content_type``."""
        return self.s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key, "ResponseContentType": content_type},
            ExpiresIn=expires_in,
        )

    def copy(self, source_key: str, key: str, content_type: str) -> None:
        """A server-side copy (the bytes never pass through the function)."""
        self.s3.copy_object(
            Bucket=self.bucket,
            Key=key,
            CopySource={"Bucket": self.bucket, "Key": source_key},
            ContentType=content_type,
            MetadataDirective="REPLACE",
        )

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=key)


def is_missing(exc: ClientError) -> bool:
    """A GET of a key that is not there (NoSuchKey; 404 for a HEAD)."""
    return exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404")


def is_precondition_failure(exc: ClientError) -> bool:
    """A conditional write (If-Match / If-None-Match) that lost."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("PreconditionFailed", "ConditionalRequestConflict", "412") or status in (409, 412)
