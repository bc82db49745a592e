"""With ``ApiAuth=IAM`` the OpenAI SDK signs its requests with SigV4 through its own ``http_client``
(``longform.client.SigV4``: botocore's SigV4Auth as an httpx auth hook; docs/openai.md). The
signature each request carries is checked as API Gateway would: recomputed from the request as
sent, with the same credentials; and ``longform serve`` answers the signed requests."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from longform.client import SigV4
from longform.local.serve import LocalApi

from .conftest import WRITER, CloudFactory, expected

pytestmark = pytest.mark.integration

KEY, SECRET = "AKIDEXAMPLELONGFORM1", "secret/example/longform/0123456789abcdef"
REGION = "eu-west-1"
HEADER = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/\d{8}/(?P<region>[^/]+)/execute-api/aws4_request, "
    r"SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


def recomputed_signature(request: httpx.Request, signed: str) -> str:
    """The signature API Gateway would compute for this request, as it arrived."""
    headers = {k: v for k, v in request.headers.items() if k.lower() in signed.split(";")}
    aws = AWSRequest(method=request.method, url=str(request.url), data=request.read(), headers=headers)
    aws.context["timestamp"] = request.headers["x-amz-date"]
    auth = SigV4Auth(Credentials(KEY, SECRET), "execute-api", REGION)
    canonical = auth.canonical_request(aws)
    return str(auth.signature(auth.string_to_sign(aws, canonical), aws))


@pytest.fixture
def signed_client(make_cloud: CloudFactory, emulator, monkeypatch) -> Iterator[tuple[openai.OpenAI, list]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)  # the caller's credentials, as boto3 finds them
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    emulator.configure(cap=300)
    seen: list[httpx.Request] = []
    auth = SigV4(REGION)  # reads the credentials now (the local cloud's moto sets fake ones of its own)
    with make_cloud() as cloud, LocalApi(cloud, port=0) as api:
        http_client = httpx.Client(auth=auth, event_hooks={"request": [seen.append]}, timeout=120)
        client = openai.OpenAI(
            base_url=f"{api.url}/v1", api_key="unused-with-iam", http_client=http_client, max_retries=0
        )
        yield client, seen


def test_sdk_requests_are_sigv4_signed_and_answered(signed_client, emulator, tmp_path: Path) -> None:
    client, seen = signed_client
    prompt = "Write about canal locks. [emulator answer_tokens=700]"
    completion = client.chat.completions.create(model=WRITER, messages=[{"role": "user", "content": prompt}])
    assert completion.choices[0].message.content == expected({"prompt": prompt}, emulator).answer
    path = tmp_path / "in.jsonl"
    path.write_text('{"custom_id": "a", "prompt": "Hello. [emulator answer_tokens=20]"}\n')
    with path.open("rb") as f:
        assert client.files.create(file=f, purpose="batch").bytes == path.stat().st_size  # multipart
    assert len(seen) == 2
    for request in seen:
        match = HEADER.match(request.headers["authorization"])  # the SDK's Bearer is replaced
        assert match, request.headers["authorization"]
        assert (match["key"], match["region"]) == (KEY, REGION)
        assert {"host", "x-amz-date"} <= set(match["signed"].split(";"))
        assert match["signature"] == recomputed_signature(request, match["signed"])
