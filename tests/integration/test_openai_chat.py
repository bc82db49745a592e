"""``longform serve`` as an OpenAI server, judged by the official ``openai`` package, unchanged: one
long answer past the provider's per-request cap, streamed or whole, equal to the uncapped answer."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import openai
import pytest

from longform.client import ApiClient
from longform.local.cloud import LocalCloud
from longform.local.openai_chat import JOB_ID_HEADER
from longform.local.serve import LocalApi

from .conftest import WRITER, CloudFactory, answer_requests, expected

pytestmark = pytest.mark.integration

CAP = 300  # the emulator's per-request cap: an answer of 1,500 tokens takes 5 requests
PROMPT = "Write about the history of tide mills. [emulator answer_tokens=1500]"


@pytest.fixture
def served(make_cloud: CloudFactory, emulator) -> Iterator[tuple[LocalCloud, LocalApi]]:
    emulator.configure(cap=CAP)
    with make_cloud() as cloud, LocalApi(cloud, port=0) as api:
        yield cloud, api


@pytest.fixture
def client(served) -> openai.OpenAI:
    _, api = served
    return openai.OpenAI(base_url=f"{api.url}/v1", api_key="not-checked-locally", max_retries=0)


def uncapped(emulator, prompt: str = PROMPT) -> str:
    answer: str = expected({"messages": [{"role": "user", "content": prompt}]}, emulator).answer
    return answer


def test_streamed_answer_is_the_whole_uncapped_answer(client, served, emulator) -> None:
    stream = client.chat.completions.create(
        model=WRITER,
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=40000,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == uncapped(emulator)
    assert len(text.split()) > CAP  # longer than one request may be
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert reasons == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 1500
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + 1500
    assert all(c.usage is None for c in chunks[:-1])
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    job_id = chunks[0].id
    assert {c.id for c in chunks} == {job_id}
    _, api = served
    view = ApiClient(api.url).status(job_id)  # a durable job: the completion id is its id
    assert view["status"] == "succeeded"
    assert view["progress"]["chunks"] == 5
    assert len(answer_requests(emulator)) == 5
    # the usage is every request's, summed
    assert chunks[-1].usage.prompt_tokens == view["progress"]["prompt_tokens_total"]


def test_whole_answer_without_streaming(client, served, emulator) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=WRITER, messages=[{"role": "user", "content": PROMPT}], max_completion_tokens=40000
    )
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == uncapped(emulator)
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 1500
    assert raw.headers[JOB_ID_HEADER] == completion.id
    _, api = served
    assert completion.id in [job["job_id"] for job in ApiClient(api.url).list()["items"]]


def test_max_tokens_is_the_whole_answers_budget(client, emulator) -> None:
    completion = client.chat.completions.create(
        model=WRITER, messages=[{"role": "user", "content": PROMPT}], max_tokens=700
    )
    text = completion.choices[0].message.content or ""
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 700
    assert uncapped(emulator).startswith(text) and len(text) < len(uncapped(emulator))


def test_longform_fields_go_as_extra_body(client, emulator) -> None:
    completion = client.chat.completions.create(
        model=WRITER,
        messages=[{"role": "user", "content": PROMPT}],
        extra_body={"max_tokens_per_request": 200, "prefill_style": "assistant"},
    )
    assert completion.choices[0].message.content == uncapped(emulator)
    assert emulator.requests[0]["max_tokens"] == 200
    assert len(emulator.requests) == 8  # 1,500 tokens in requests of 200


def test_idempotency_key_replays_the_same_job(client, emulator) -> None:
    headers = {"Idempotency-Key": "tide-mills-1"}
    first = client.chat.completions.create(
        model=WRITER, messages=[{"role": "user", "content": PROMPT}], extra_headers=headers
    )
    requests = len(emulator.requests)
    again = client.chat.completions.create(
        model=WRITER, messages=[{"role": "user", "content": PROMPT}], extra_headers=headers
    )
    assert again.id == first.id
    assert again.choices[0].message.content == first.choices[0].message.content == uncapped(emulator)
    assert len(emulator.requests) == requests  # nothing generated twice


def test_a_client_that_goes_away_does_not_stop_the_job(served, emulator) -> None:
    """The stream is read up to its first text, then the connection is closed: the job goes on and
    its output is the whole answer."""
    _, api = served
    emulator.configure(token_delay=0.001)
    body = {"model": WRITER, "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    with httpx.stream("POST", f"{api.url}/v1/chat/completions", json=body, timeout=60) as response:
        job_id = response.headers[JOB_ID_HEADER]
        for line in response.iter_lines():
            if line.startswith("data: ") and '"content": "' in line and '"content": ""' not in line:
                break
    emulator.configure(token_delay=0.0)
    client = ApiClient(api.url)
    text = "".join(client.follow(job_id, poll=0.05))
    assert text == uncapped(emulator)
    assert client.status(job_id)["status"] == "succeeded"


def test_bad_request_raises_bad_request_error(client) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=WRITER,
            messages=[{"role": "user", "content": PROMPT}],
            extra_body={"max_tokens_per_reqest": 100},
        )
    error = info.value.body
    assert isinstance(error, dict)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "max_tokens_per_reqest"
    assert "max_tokens_per_reqest: unknown field" in error["message"]
    assert info.value.status_code == 400


def test_unsupported_openai_features_are_named(client) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=WRITER,
            messages=[{"role": "user", "content": PROMPT}],
            n=2,
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        )
    message = info.value.body["message"]  # type: ignore[index]
    assert "n: only n=1" in message and "tools: tools are not supported" in message


def test_models_lists_the_default_model(client) -> None:
    models = client.models.list()
    assert WRITER in [m.id for m in models.data]


def test_unknown_route_is_not_found_in_openai_shape(client) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.get("/no/such/thing", cast_to=object)
    assert info.value.body["type"] == "invalid_request_error"  # type: ignore[index]


def test_streams_of_two_clients_at_once(client, emulator) -> None:
    """Two streams at once, each its own job, each the whole answer of its own prompt."""
    prompts = [PROMPT, "Write about windmills. [emulator answer_tokens=900]"]
    texts: dict[int, str] = {}
    barrier = threading.Barrier(2)

    def run(i: int) -> None:
        barrier.wait()
        stream = client.chat.completions.create(
            model=WRITER, messages=[{"role": "user", "content": prompts[i]}], stream=True
        )
        texts[i] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert texts == {0: uncapped(emulator, prompts[0]), 1: uncapped(emulator, prompts[1])}


def test_a_failed_job_is_an_error_streamed_or_not(client, served, emulator) -> None:
    """A job that ends ``failed`` is not a short answer that looks whole: the SDK raises (an ``error``
    event in the stream, a 500 without streaming), and the message names the job."""
    emulator.inject({"type": "status", "status": 400, "message": "invalid request: no such model"})
    with pytest.raises(openai.APIError) as info:
        for _ in client.chat.completions.create(
            model=WRITER, messages=[{"role": "user", "content": PROMPT}], stream=True
        ):
            pass
    assert "ended failed" in str(info.value) and "longform output" in str(info.value)
    emulator.inject({"type": "status", "status": 400, "message": "invalid request: no such model"})
    with pytest.raises(openai.InternalServerError) as whole:
        client.chat.completions.create(model=WRITER, messages=[{"role": "user", "content": PROMPT}])
    assert whole.value.body["code"] == "job_failed"  # type: ignore[index]


def test_the_stream_carries_text_while_the_job_still_runs(client, served, emulator) -> None:
    """The second request of the job is held until the client has read text: the first chunk's text
    reaches the client while the job is running (not when it ends), and the rest follows seamlessly."""
    cloud, api = served
    release = threading.Event()
    seen = {"chunks": 0}

    def hold_second_chunk(function: str, event: dict) -> None:
        if function == "GenerateChunkFunction":
            seen["chunks"] += 1
            if seen["chunks"] == 2:
                assert release.wait(timeout=120), "the client never read the first chunk's text"

    cloud.fault_hook = hold_second_chunk
    stream = client.chat.completions.create(
        model=WRITER, messages=[{"role": "user", "content": PROMPT}], stream=True
    )
    pieces: list[str] = []
    for chunk in stream:
        piece = chunk.choices[0].delta.content if chunk.choices else None
        if piece:
            if not release.is_set():
                view = ApiClient(api.url).status(chunk.id)
                assert view["status"] == "running" and view["progress"]["chunks"] <= 1
                release.set()
            pieces.append(piece)
    assert release.is_set()
    assert "".join(pieces) == uncapped(emulator)


def test_keepalive_comments_while_no_text_flows_do_not_disturb_the_sdk(client, served, emulator) -> None:
    """While the job's second request is held (no text flows), the stream carries SSE comments; the
    raw stream then ends as OpenAI's does, and the SDK reads the whole answer through comments."""
    cloud, api = served
    api.chat.keepalive = 0.0  # a comment on every quiet poll
    release = threading.Event()
    seen = {"chunks": 0}

    def hold_second_chunk(function: str, event: dict) -> None:
        if function == "GenerateChunkFunction":
            seen["chunks"] += 1
            if seen["chunks"] == 2:
                assert release.wait(timeout=120), "no keep-alive came while the job was quiet"

    cloud.fault_hook = hold_second_chunk
    body = {"model": WRITER, "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    lines: list[str] = []
    with httpx.stream("POST", f"{api.url}/v1/chat/completions", json=body, timeout=120) as response:
        for line in response.iter_lines():
            lines.append(line)
            if line.startswith(": keep-alive"):
                release.set()
    assert release.is_set() and [x for x in lines if x][-1] == "data: [DONE]"
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model=WRITER, messages=[{"role": "user", "content": PROMPT}], stream=True
        )
        if c.choices
    )
    assert text == uncapped(emulator)
