"""`longform serve`'s HTTP edge: what API Gateway refuses before the function runs."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from longform.local.cloud import LocalCloud
from longform.local.serve import MAX_BODY_BYTES, LocalApi

from .conftest import CloudFactory

pytestmark = pytest.mark.integration


@pytest.fixture
def served(make_cloud: CloudFactory) -> Iterator[tuple[LocalCloud, LocalApi]]:
    with make_cloud() as cloud, LocalApi(cloud, port=0) as api:
        yield cloud, api


def raw_request(api: LocalApi, head: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` (request line and headers, no blank line) and ``body`` on a raw socket; the
    status, headers and body of the answer (read until the server closes the connection)."""
    host, port = api.server.server_address[:2]
    with socket.create_connection((str(host), port), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n\r\n" + body)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head_raw, _, rest = data.partition(b"\r\n\r\n")
    lines = head_raw.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, rest


@pytest.mark.parametrize(
    ("length", "status"),
    [("abc", 400), ("-5", 400), ("1.5", 400), ("", 400), (str(10**13), 413), (str(MAX_BODY_BYTES + 1), 413)],
)
def test_a_bad_content_length_is_answered_not_a_traceback(
    served, capfd: pytest.CaptureFixture[str], length: str, status: int
) -> None:
    _, api = served
    got, headers, body = raw_request(
        api,
        f"POST /generations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}",
        b'{"prompt": "hi"}',
    )
    assert got == status
    assert headers["connection"] == "close"
    assert json.loads(body)["message"]
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error" not in err
    # the server still serves
    ok, _, listing = raw_request(api, "GET /generations HTTP/1.1\r\nHost: x\r\nConnection: close")
    assert ok == 200 and "items" in json.loads(listing)


def test_a_body_at_the_quota_reaches_the_function(served) -> None:
    _, api = served
    body = json.dumps({"prompt": "x" * 100}).encode()
    got, _, answer = raw_request(
        api,
        f"POST /generations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close",
        body,
    )
    assert got == 202, answer
    assert json.loads(answer)["job_id"]
