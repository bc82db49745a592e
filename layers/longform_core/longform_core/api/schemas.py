"""What the HTTP API answers: the response models (their docstrings and field descriptions are the
OpenAPI document's schemas) and the OpenAPI ``responses`` entries of the error codes.

``JobView`` (``status.py``) is the status model every entry point shows; the API answers it as is.
"""

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..batch.models import BatchStatus
from ..models import JobStatus
from ..output import DraftSlice
from ..status import JobView

JSON = "application/json"


class ProblemModel(BaseModel):
    field: str = Field(
        description="where: a dotted path into the request (`messages[0].role`, `query.limit`)"
    )
    message: str = Field(description="what is wrong with it")


class ErrorBody(BaseModel):
    """Every error answer: what went wrong, with every problem named."""

    error: str = Field(description="the error name, e.g. RequestInvalid, JobNotFound, IdempotencyConflict")
    message: str
    problems: list[ProblemModel] = Field(default_factory=list)
    job_id: str | None = None
    batch_id: str | None = None
    status: JobStatus | BatchStatus | None = Field(
        default=None, description="the job's (or batch's) status, when the error is about it"
    )


class Links(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    self_: str = Field(alias="self", description="GET: status and progress")
    output: str = Field(description="GET: the text so far")
    cancel: str = Field(description="DELETE: cancel the job")


class SubmitAccepted(BaseModel):
    """``POST /generations``: the job was accepted (or, with a repeated Idempotency-Key, found)."""

    job_id: str
    status: JobStatus
    model: str
    links: Links


class OutputPage(BaseModel):
    """``GET /generations/{job_id}/output``: the text from ``offset``, inline or as a presigned URL."""

    job_id: str
    status: JobStatus
    offset: int = Field(description="the character offset this page starts at")
    next_offset: int = Field(description="pass as `offset` to get what comes next")
    complete: bool = Field(description="the job has ended and nothing follows `next_offset`")
    text: str | None = Field(default=None, description="the characters [offset, next_offset); null with url")
    url: str | None = Field(
        default=None,
        description="presigned S3 GET of the whole output.md, given instead of `text` when the rest is "
        "larger than the inline limit; the page is its `bytes` bytes from `byte_offset` "
        "(`Range: bytes={byte_offset}-{byte_offset + bytes - 1}`)",
    )
    expires_in: int | None = Field(default=None, description="seconds the url stays valid")
    byte_offset: int | None = Field(default=None, description="the UTF-8 byte offset of `offset` (with url)")
    bytes: int = Field(description="UTF-8 size of the part from `offset` to `next_offset`")
    draft: DraftSlice | None = Field(
        default=None,
        description="while the job runs and this page reaches the committed end: the chunk in flight "
        "(a draft checkpoint, not committed; the commit supersedes it), starting at `draft.offset`",
    )


class JobList(BaseModel):
    """``GET /generations``: the most recent jobs first."""

    items: list[JobView]
    next_token: str | None = Field(default=None, description="pass as `next_token` for the next page")


def error_responses(*codes: HTTPStatus) -> dict[int, Any]:
    """OpenAPI ``responses`` entries for error codes, all with the ErrorBody schema."""
    return {
        code.value: {"description": code.phrase, "content": {JSON: {"model": ErrorBody}}} for code in codes
    }
