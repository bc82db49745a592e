"""``POST /v1/chat/completions`` on ``longform serve``: one long answer, streamed or whole, as a durable
job underneath.

The chat request becomes longform's request (``longform_core.openai.chat``) and goes through the API
function's own ``POST /generations`` (the one submit path: the job is in ``longform list``, an
``Idempotency-Key`` header replays it, it is owned like any other job). Then the answer is read back
through ``GET /generations/{id}/output`` as it is generated, the committed text and the draft of the
chunk in flight (``live.LiveText``: append-only, so the seams between requests are invisible), and
sent as ``chat.completion.chunk`` events, or as one ``chat.completion`` when the job ends. A client
that goes away stops only its own stream: the job goes on (``longform output ID``).

This part lives in serve and not in the API function because an API Gateway proxy answer cannot
stream and cannot wait for a job of many minutes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from longform_core.errors import RequestInvalid
from longform_core.openai import chat
from longform_core.openai.errors import from_longform, openai_error

from ..live import LiveText

JOB_ID_HEADER = "X-Longform-Job-Id"
POLL_SECONDS = 0.05
# an SSE comment when no text went out for this long (a job queued, backing off after a 429, or
# reasoning): clients and proxies with a read timeout keep the stream; OpenAI's SDKs skip comments
KEEPALIVE_SECONDS = 15.0
logger = logging.getLogger("longform.serve")

Invoke = Callable[[str, str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]


class Writer(Protocol):
    """What the chat handler writes to: the HTTP server's request handler."""

    def send_response(self, code: int, message: str | None = None) -> None: ...
    def send_header(self, keyword: str, value: str) -> None: ...
    def end_headers(self) -> None: ...

    @property
    def wfile(self) -> Any: ...


class Gone(Exception):
    """The client closed its connection (the job goes on)."""


class ChatCompletions:
    """Answers ``POST /v1/chat/completions`` through the API function (``invoke``)."""

    def __init__(self, invoke: Invoke, *, poll: float = POLL_SECONDS, keepalive: float = KEEPALIVE_SECONDS):
        self.invoke = invoke
        self.poll = poll
        self.keepalive = keepalive

    # ---- the API function, as a client of it -------------------------------------------------------

    def _call(self, method: str, target: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        raw = json.dumps(body).encode() if body is not None else b""
        sent = {"accept": "application/json", "content-type": "application/json", **(headers or {})}
        status, _, out = self.invoke(method, target, sent, raw)
        data = json.loads(out or b"null")
        if status >= 400:
            raise _Answer(status, from_longform(status, data))
        return data

    def _pages(self, job_id: str) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
        """(committed text new since the last page, the current draft's text, the page) until the job
        has ended and every committed character was read."""
        offset = 0
        while True:
            page = self._call("GET", f"/generations/{job_id}/output?offset={offset}")
            if page.get("text") is None and page.get("url"):
                raise _Answer(500, openai_error(500, "the output is too large to serve inline"))
            offset = int(page["next_offset"])
            draft = page.get("draft") or {}
            yield page.get("text") or "", draft.get("text"), page
            if page.get("complete"):
                return
            time.sleep(self.poll)

    # ---- HTTP ------------------------------------------------------------------------------------

    def handle(self, out: Writer, headers: dict[str, str], body: bytes) -> None:
        try:
            try:
                data = json.loads(body or b"null")
            except ValueError as exc:
                raise _Answer(400, openai_error(400, f"the body is not valid JSON: {exc}")) from exc
            try:
                request, stream, include_usage = chat.generation_request(data)
            except RequestInvalid as exc:
                raise _Answer(400, from_longform(400, exc.to_dict())) from exc
            key = headers.get("idempotency-key")
            accepted = self._call("POST", "/generations", request, {"idempotency-key": key} if key else None)
        except _Answer as answer:
            _send_json(out, answer.status, answer.body)
            return
        job = _Job(accepted["job_id"], str(accepted.get("model") or ""), int(time.time()))
        try:
            if stream:
                self._stream(out, job, include_usage)
            else:
                self._whole(out, job)
        except Gone:
            logger.info("client of job %s went away; the job goes on", job.job_id)

    def _whole(self, out: Writer, job: _Job) -> None:
        try:
            text = "".join(new for new, _, _ in self._pages(job.job_id))
            view = self._call("GET", f"/generations/{job.job_id}")
        except _Answer as answer:
            _send_json(out, answer.status, answer.body, job.job_id)
            return
        reason = chat.finish_reason(view["status"], view.get("stop_reason"))
        if reason is None:
            _send_json(out, 500, _job_error(job.job_id, view), job.job_id)
            return
        usage = chat.usage_object(view["progress"])
        body = chat.completion_object(job.job_id, job.created, job.model, text, reason, usage)
        _send_json(out, 200, body, job.job_id)

    def _stream(self, out: Writer, job: _Job, include_usage: bool) -> None:
        out.send_response(200)
        out.send_header("Content-Type", "text/event-stream; charset=utf-8")
        out.send_header("Cache-Control", "no-cache")
        out.send_header("Connection", "close")  # the stream ends when the connection does
        out.send_header(JOB_ID_HEADER, job.job_id)
        out.end_headers()

        def chunk(**fields: Any) -> dict[str, Any]:
            return chat.chunk_object(
                job.job_id, job.created, job.model, include_usage=include_usage, **fields
            )

        _event(out, chunk(delta={"role": "assistant", "content": ""}))
        live = LiveText()
        last_write = time.monotonic()
        try:
            for new, draft, _ in self._pages(job.job_id):
                piece = live.update(new, draft)
                if piece:
                    _event(out, chunk(delta={"content": piece}))
                    last_write = time.monotonic()
                elif time.monotonic() - last_write >= self.keepalive:
                    _write(out, b": keep-alive\n\n")
                    last_write = time.monotonic()
            view = self._call("GET", f"/generations/{job.job_id}")
        except _Answer as answer:
            _event(out, answer.body)
            return
        if live.revised:
            logger.warning("job %s: %d commit(s) differed from the draft streamed", job.job_id, live.revised)
        reason = chat.finish_reason(view["status"], view.get("stop_reason"))
        if reason is None:  # failed or cancelled: an error event, as OpenAI sends a failure mid-stream
            _event(out, _job_error(job.job_id, view))
            return
        _event(out, chunk(reason=reason))
        if include_usage:
            _event(out, chunk(usage=chat.usage_object(view["progress"])))
        _write(out, b"data: [DONE]\n\n")


class _Job:
    def __init__(self, job_id: str, model: str, created: int):
        self.job_id = job_id
        self.model = model
        self.created = created


class _Answer(Exception):
    """An error answer in OpenAI's shape."""

    def __init__(self, status: int, body: dict[str, Any]):
        self.status = status
        self.body = body
        super().__init__(body["error"]["message"])


def _job_error(job_id: str, view: dict[str, Any]) -> dict[str, Any]:
    status = view.get("status")
    why = f": {view['error']}" if view.get("error") else ""
    message = f"job {job_id} ended {status}{why}; its text so far: longform output {job_id}"
    return openai_error(500, message, code=f"job_{status}")


def _write(out: Writer, data: bytes) -> None:
    try:
        out.wfile.write(data)
        out.wfile.flush()
    except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
        raise Gone from exc


def _event(out: Writer, obj: dict[str, Any]) -> None:
    _write(out, b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n")


def _send_json(out: Writer, status: int, body: dict[str, Any], job_id: str | None = None) -> None:
    raw = json.dumps(body, ensure_ascii=False).encode()
    out.send_response(status)
    out.send_header("Content-Type", "application/json")
    out.send_header("Content-Length", str(len(raw)))
    if job_id:
        out.send_header(JOB_ID_HEADER, job_id)
    out.end_headers()
    _write(out, raw)
