"""The API client's readable errors and ``follow`` over committed text and drafts."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from longform.client import ApiClient, ApiError, ApiUnreachable, describe_error


def test_an_api_error_is_its_message_and_one_line_per_problem() -> None:
    body = {
        "error": "RequestInvalid",
        "message": "invalid request (2 problem(s))",
        "problems": [
            {"field": "prompt", "message": "must not be empty"},
            {"field": "max_chunks", "message": "> 0"},
        ],
    }
    assert describe_error(400, body).splitlines() == [
        "HTTP 400 (RequestInvalid): invalid request (2 problem(s))",
        "  - prompt: must not be empty",
        "  - max_chunks: > 0",
    ]
    assert describe_error(502, "Bad Gateway") == "HTTP 502: Bad Gateway"
    assert describe_error(404, {"message": "Not Found"}) == "HTTP 404: Not Found"


def test_connection_refused_is_unreachable_with_a_hint() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = ApiClient("http://127.0.0.1:8787", transport=httpx.MockTransport(refuse))
    with pytest.raises(ApiUnreachable, match=r"connection refused \(is `longform serve` running\?\)"):
        client.status("abc")
    remote = ApiClient("https://api.example.com", transport=httpx.MockTransport(refuse))
    with pytest.raises(ApiUnreachable) as info:
        remote.status("abc")
    assert "longform serve" not in str(info.value)


def test_http_errors_raise_api_error() -> None:
    client = ApiClient(
        "http://127.0.0.1:8787",
        transport=httpx.MockTransport(
            lambda r: httpx.Response(404, json={"error": "JobNotFound", "message": "no job"})
        ),
    )
    with pytest.raises(ApiError, match=r"HTTP 404 \(JobNotFound\): no job"):
        client.status("abc")


def pages(*items: dict[str, Any]) -> httpx.MockTransport:
    queue = list(items)
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(int(request.url.params.get("offset", "0")))
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        return httpx.Response(
            200, content=json.dumps(item).encode(), headers={"content-type": "application/json"}
        )

    transport = httpx.MockTransport(handler)
    transport.seen = seen  # type: ignore[attr-defined]
    return transport


def page(text: str, offset: int, *, draft: str | None = None, status: str = "running") -> dict[str, Any]:
    end = offset + len(text)
    return {
        "job_id": "j",
        "status": status,
        "offset": offset,
        "next_offset": end,
        "complete": status != "running",
        "text": text,
        "bytes": len(text.encode()),
        "draft": None if draft is None else {"chunk_index": 0, "offset": end, "text": draft, "tokens": 1},
    }


def test_follow_prints_the_draft_and_never_twice() -> None:
    transport = pages(
        page("", 0, draft="The heron "),
        page("", 0, draft="The heron waits "),
        page("The heron waits by the reeds.", 0, draft=" It"),
        page("", 29, draft=" It strikes."),
        page(" It strikes.", 29, status="succeeded"),
    )
    client = ApiClient("http://127.0.0.1:8787", transport=transport)
    printed = list(client.follow("j", poll=0))
    assert "".join(printed) == "The heron waits by the reeds. It strikes."
    assert printed[0] == "The heron "  # the chunk in flight, before any commit
    assert transport.seen == [0, 0, 0, 29, 29]  # type: ignore[attr-defined]


def test_follow_committed_only() -> None:
    transport = pages(page("", 0, draft="draft "), page("Done.", 0, status="succeeded"))
    client = ApiClient("http://127.0.0.1:8787", transport=transport)
    assert list(client.follow("j", poll=0, drafts=False)) == ["Done."]
