"""The emulator over real HTTP (loopback) with httpx."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from longform.emulator import cli
from longform.emulator.errors import context_error_message
from longform.emulator.model import (
    canonical_output,
    count_tokens,
    full_content,
    prompt_tokens,
    uncapped_answer,
)
from longform.emulator.server import EmulatorServer, EmulatorSettings

SRC = Path(__file__).resolve().parents[2] / "src"
PROMPT = (
    "Write a guide to building dry stone walls [emulator answer_tokens=300] [emulator reasoning_tokens=40]"
)


def convo(text: str = PROMPT) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(autouse=True)
def _fresh(emu: EmulatorServer) -> None:
    emu.reset()


@dataclass
class Streamed:
    content: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    chunks: list[dict[str, Any]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    headers: httpx.Headers | None = None


def stream(client: httpx.Client, body: dict[str, Any], path: str = "/chat/completions") -> Streamed:
    out = Streamed()
    with client.stream("POST", path, json={"stream": True, **body}) as response:
        assert response.status_code == 200, response.read()
        out.headers = response.headers
        for line in response.iter_lines():
            if not line:
                continue
            out.lines.append(line)
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[len("data: ") :])
            out.chunks.append(chunk)
            if chunk.get("usage"):
                out.usage = chunk["usage"]
            for choice in chunk["choices"]:
                out.content += choice["delta"].get("content") or ""
                out.reasoning += choice["delta"].get("reasoning_content") or ""
                out.finish_reason = choice["finish_reason"] or out.finish_reason
    return out


def post(client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return client.post("/chat/completions", json=body)


# --------------------------------------------------------------------------- streaming


def test_streaming_chunks_usage_on_last_chunk(client: httpx.Client) -> None:
    s = stream(client, {"model": "m", "messages": convo()})
    assert s.headers is not None
    assert s.headers["content-type"].startswith("text/event-stream")
    assert s.headers["transfer-encoding"] == "chunked"
    first, last = s.chunks[0], s.chunks[-1]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    for chunk in s.chunks:
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["id"].startswith("chatcmpl-")
        assert chunk["model"] == "m"
        assert isinstance(chunk["created"], int)
    assert all(c["choices"][0]["finish_reason"] is None for c in s.chunks[:-1])
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["usage"] == s.usage
    assert s.lines[-1] == "data: [DONE]"
    assert s.content == uncapped_answer(convo())
    assert len(s.chunks) == 2 + 300  # role chunk, one per token, final chunk
    assert s.usage is not None
    p = prompt_tokens(convo())
    assert s.usage["prompt_tokens"] == p
    assert s.usage["completion_tokens"] == 300
    assert s.usage["total_tokens"] == p + 300
    assert s.usage["estimated_cost"] == round((p * 0.10 + 300 * 0.40) / 1e6, 8)
    assert s.usage["prompt_tokens_details"] == {"cached_tokens": 0}


def test_usage_chunk_separate_mode(emu: EmulatorServer, client: httpx.Client) -> None:
    emu.configure(usage_chunk="separate")
    body = {"model": "m", "messages": convo(), "stream_options": {"include_usage": True}}
    s = stream(client, body)
    assert s.chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert "usage" not in s.chunks[-2]
    assert s.chunks[-1]["choices"] == []
    assert s.chunks[-1]["usage"]["completion_tokens"] == 300
    s = stream(client, {"model": "m", "messages": convo()})
    assert s.usage is None
    assert s.finish_reason == "stop"
    assert s.content == uncapped_answer(convo())


def test_keepalive_comments(emu: EmulatorServer, client: httpx.Client) -> None:
    emu.configure(keepalive_every=50)
    s = stream(client, {"model": "m", "messages": convo()})
    assert s.lines.count(": keep-alive") == 6
    assert s.content == uncapped_answer(convo())


def test_per_request_cap_gives_length(emu: EmulatorServer, client: httpx.Client) -> None:
    emu.configure(cap=40)
    s = stream(client, {"model": "m", "messages": convo(), "max_tokens": 1000})
    assert s.finish_reason == "length"
    assert s.usage is not None
    assert s.usage["completion_tokens"] == 40
    assert count_tokens(s.content) == 40
    assert uncapped_answer(convo()).startswith(s.content)
    r = post(client, {"model": "m", "messages": convo(), "max_tokens": 7})
    assert r.json()["choices"][0]["finish_reason"] == "length"
    assert r.json()["usage"]["completion_tokens"] == 7
    assert emu.requests[-1]["effective_max_tokens"] == 7
    assert emu.requests[-1]["max_tokens"] == 7


@pytest.mark.parametrize("model", ["plain", "x-reasoning", "x-thinking"])
def test_continuation_loop_reproduces_uncapped_output(
    emu: EmulatorServer, client: httpx.Client, model: str
) -> None:
    emu.configure(cap=57)
    messages = convo()
    canonical = canonical_output(messages, model=model, seed=None, settings=emu.settings)
    content, reasoning, calls = "", "", 0
    while True:
        prefill = content
        if reasoning:
            prefill = "<think>\n" + reasoning + ("\n</think>\n\n" + content if content else "")
        sent = [*messages, {"role": "assistant", "content": prefill}] if prefill else messages
        s = stream(client, {"model": model, "messages": sent})
        content += s.content
        reasoning += s.reasoning
        calls += 1
        assert s.usage is not None
        if calls > 1:
            assert s.usage["prompt_tokens_details"]["cached_tokens"] > 0
        if s.finish_reason == "stop":
            break
        assert s.finish_reason == "length"
        assert s.usage["completion_tokens"] == 57
    assert content == full_content(canonical)
    if model == "x-reasoning":
        assert reasoning == canonical.reasoning
        assert content == uncapped_answer(messages)
    elif model == "x-thinking":
        assert content.startswith("<think>\n")
        assert content.endswith("</think>\n\n" + uncapped_answer(messages))
    else:
        assert content == uncapped_answer(messages)
        assert reasoning == ""
    tokens = count_tokens(full_content(canonical)) + len(
        canonical.reasoning_pieces if model == "x-reasoning" else ()
    )
    assert calls == -(-tokens // 57)


def test_non_streaming_reasoning_styles(client: httpx.Client) -> None:
    body = post(client, {"model": "x-reasoning", "messages": convo()}).json()
    message = body["choices"][0]["message"]
    canonical = canonical_output(convo(), model="x-reasoning", seed=None)
    assert body["object"] == "chat.completion"
    assert message["role"] == "assistant"
    assert message["reasoning_content"] == canonical.reasoning
    assert message["content"] == canonical.answer
    assert body["usage"]["completion_tokens"] == 340
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": 40}
    body = post(client, {"model": "x-thinking", "messages": convo()}).json()
    message = body["choices"][0]["message"]
    assert "reasoning_content" not in message
    assert message["content"].startswith("<think>\nOkay, the user")
    body = post(client, {"model": "plain", "messages": convo()}).json()
    assert body["choices"][0]["message"]["content"] == uncapped_answer(convo())
    assert body["choices"][0]["finish_reason"] == "stop"


def test_seed_and_alias_path(client: httpx.Client) -> None:
    a = client.post("/chat/completions", json={"model": "m", "messages": convo(), "seed": 1}).json()
    b = httpx.post(
        str(client.base_url).removesuffix("/").removesuffix("/openai") + "/chat/completions",
        json={"model": "m", "messages": convo(), "seed": 1},
    ).json()
    c = client.post("/chat/completions", json={"model": "m", "messages": convo(), "seed": 2}).json()
    assert a["choices"][0]["message"]["content"] == b["choices"][0]["message"]["content"]
    assert a["choices"][0]["message"]["content"] != c["choices"][0]["message"]["content"]


# --------------------------------------------------------------------------- context window


NUMBERS = re.compile(r"\d+")


def test_context_error_input_too_long(emu: EmulatorServer, client: httpx.Client) -> None:
    p = prompt_tokens(convo())
    emu.configure(context_length=p)
    r = post(client, {"model": "m", "messages": convo(), "max_tokens": 10})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        f"This model's maximum context length is {p} tokens. However, your request has {p} input tokens. "
        "Please reduce the length of the input messages."
    )
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert r.json()["error"]["code"] == 400


@pytest.mark.parametrize("body_style", ["nested", "flat"])
@pytest.mark.parametrize("wording", ["requested", "too_large"])
def test_context_error_wordings(
    emu: EmulatorServer, client: httpx.Client, wording: str, body_style: str
) -> None:
    p = prompt_tokens(convo())
    emu.configure(context_length=p + 100, context_error_style=wording, error_body=body_style)
    r = post(client, {"model": "m", "messages": convo(), "max_tokens": 101})
    assert r.status_code == 400
    body = r.json()
    if body_style == "flat":
        assert body["object"] == "error"
        assert body["type"] == "BadRequestError"
        assert body["code"] == 400
        message = body["message"]
    else:
        message = body["error"]["message"]
    assert message == context_error_message(p + 100, p, 101, wording)  # type: ignore[arg-type]
    if wording == "requested":
        assert message == (
            f"This model's maximum context length is {p + 100} tokens. However, you requested {p + 101} "
            f"tokens ({p} in the messages, 101 in the completion). Please reduce the length of the messages "
            "or completion."
        )
    else:
        assert message == (
            f"'max_tokens' or 'max_completion_tokens' is too large: 101. This model's maximum context length "
            f"is {p + 100} tokens and your request has {p} input tokens (101 > {p + 100} - {p})."
        )
    # exactly filling the window is fine
    ok = post(client, {"model": "m", "messages": convo(), "max_tokens": 100})
    assert ok.status_code == 200
    assert ok.json()["usage"]["completion_tokens"] == 100


def test_clamp_mode(emu: EmulatorServer, client: httpx.Client) -> None:
    p = prompt_tokens(convo())
    emu.configure(context_length=p + 30, overflow="clamp")
    r = post(client, {"model": "m", "messages": convo(), "max_tokens": 4096})
    assert r.status_code == 200
    assert r.json()["usage"]["completion_tokens"] == 30
    assert r.json()["choices"][0]["finish_reason"] == "length"
    assert emu.requests[-1]["effective_max_tokens"] == 30


def test_max_tokens_null_uses_what_fits(emu: EmulatorServer, client: httpx.Client) -> None:
    p = prompt_tokens(convo())
    emu.configure(context_length=p + 25, cap=100)
    r = post(client, {"model": "m", "messages": convo(), "max_tokens": None})
    assert r.status_code == 200
    assert r.json()["usage"]["completion_tokens"] == 25
    emu.configure(context_length=p + 1000, cap=60)
    r = post(client, {"model": "m", "messages": convo()})
    assert r.json()["usage"]["completion_tokens"] == 60
    emu.configure(context_length=None)
    assert post(client, {"model": "m", "messages": convo()}).json()["usage"]["completion_tokens"] == 60
    r = post(client, {"model": "m", "messages": convo(), "max_completion_tokens": 5})
    assert r.json()["usage"]["completion_tokens"] == 5


# --------------------------------------------------------------------------- stop sequences


def test_stop_sequences(client: httpx.Client) -> None:
    answer = uncapped_answer(convo())
    cut = answer.index("\n\n## Part 1")
    s = stream(client, {"model": "m", "messages": convo(), "stop": "\n\n## Part"})
    assert s.content == answer[:cut]
    assert s.finish_reason == "stop"
    word = answer.split()[5]
    r = post(client, {"model": "m", "messages": convo(), "stop": ["zzzz", word]}).json()
    assert r["choices"][0]["message"]["content"] == answer[: answer.index(word)]
    assert r["choices"][0]["finish_reason"] == "stop"
    r = post(client, {"model": "m", "messages": convo(), "stop": ["no such text"], "max_tokens": 10}).json()
    assert r["choices"][0]["finish_reason"] == "length"
    # only the text of this response counts: a prefill holding the stop string does not stop it
    prefill = answer[: cut + 20]
    r = post(
        client,
        {
            "model": "m",
            "messages": [*convo(), {"role": "assistant", "content": prefill}],
            "stop": "\n\n## Part",
            "max_tokens": 5,
        },
    ).json()
    assert r["choices"][0]["finish_reason"] == "length"
    assert (
        prefill + r["choices"][0]["message"]["content"]
        == answer[: len(prefill + r["choices"][0]["message"]["content"])]
    )


# --------------------------------------------------------------------------- faults


def test_fault_429_with_retry_after_then_normal(emu: EmulatorServer, client: httpx.Client) -> None:
    emu.inject({"type": "status", "status": 429, "retry_after": 2}, {"type": "status", "status": 500})
    r = post(client, {"model": "m", "messages": convo()})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "2"
    assert r.json()["error"]["message"] == "Model is overloaded, please try again later"
    r = post(client, {"model": "m", "messages": convo()})
    assert r.status_code == 500
    assert "retry-after" not in r.headers
    assert post(client, {"model": "m", "messages": convo()}).status_code == 200
    assert [e["status"] for e in emu.requests] == [429, 500, 200]
    assert emu.requests[0]["fault"]["type"] == "status"


def test_fault_status_custom_message(emu: EmulatorServer, client: httpx.Client) -> None:
    emu.configure(error_body="flat")
    emu.inject({"type": "status", "status": 503, "message": "busy"})
    r = post(client, {"model": "m", "messages": convo()})
    assert r.status_code == 503
    assert r.json()["message"] == "busy"
    assert r.json()["code"] == 503


def test_fault_cut_breaks_the_stream(emu: EmulatorServer, client: httpx.Client) -> None:
    emu.inject({"type": "cut", "after_tokens": 20})
    lines: list[str] = []

    def read() -> None:
        body = {"model": "m", "messages": convo(), "stream": True}
        with client.stream("POST", "/chat/completions", json=body) as response:
            lines.extend(response.iter_lines())

    with pytest.raises(httpx.RemoteProtocolError):
        read()
    assert "data: [DONE]" not in lines
    received = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content", "")
        for line in lines
        if line.startswith("data: ")
    )
    assert received == uncapped_answer(convo())[: len(received)]
    assert count_tokens(received) == 20
    assert emu.requests[-1]["fault"] == {"type": "cut", "after_tokens": 20}
    assert emu.requests[-1]["finish_reason"] is None
    # the server is fine afterwards
    assert stream(client, {"model": "m", "messages": convo()}).finish_reason == "stop"


def test_fault_cut_and_stall_without_streaming(emu: EmulatorServer, client: httpx.Client) -> None:
    emu.inject({"type": "cut", "after_tokens": 3}, {"type": "stall", "after_tokens": 0, "seconds": 0.2})
    with pytest.raises(httpx.RemoteProtocolError):
        post(client, {"model": "m", "messages": convo()})
    started = time.perf_counter()
    r = post(client, {"model": "m", "messages": convo(), "max_tokens": 5})
    assert time.perf_counter() - started >= 0.2
    assert r.json()["usage"]["completion_tokens"] == 5


def test_streamed_reasoning_field(client: httpx.Client) -> None:
    canonical = canonical_output(convo(), model="x-reasoning", seed=None)
    s = stream(client, {"model": "x-reasoning", "messages": convo(), "max_tokens": 50})
    assert s.reasoning == "".join(canonical.reasoning_pieces)
    assert s.content == "".join(canonical.answer_pieces[:10])
    deltas = [c["choices"][0]["delta"] for c in s.chunks[1:41]]
    assert all(set(d) == {"reasoning_content"} for d in deltas)
    assert s.usage is not None
    assert s.usage["completion_tokens_details"] == {"reasoning_tokens": 40}


def test_fault_slow_and_stall(emu: EmulatorServer, client: httpx.Client) -> None:
    body = {"model": "m", "messages": convo(), "max_tokens": 20}
    emu.inject({"type": "slow", "token_delay": 0.01})
    started = time.perf_counter()
    s = stream(client, body)
    assert time.perf_counter() - started >= 0.2
    assert s.usage is not None
    assert s.usage["completion_tokens"] == 20
    emu.inject({"type": "stall", "after_tokens": 5, "seconds": 0.3})
    started = time.perf_counter()
    s = stream(client, body)
    assert time.perf_counter() - started >= 0.3
    assert s.finish_reason == "length"
    assert s.content == uncapped_answer(convo())[: len(s.content)]
    assert count_tokens(s.content) == 20
    assert emu.pending_faults == []  # faults are consumed: the next request streams as usual
    plain = stream(client, body)
    assert plain.finish_reason == "length"
    assert plain.content == s.content


def test_token_delay_setting(emu: EmulatorServer, client: httpx.Client) -> None:
    emu.configure(token_delay=0.005)
    started = time.perf_counter()
    r = post(client, {"model": "m", "messages": convo(), "max_tokens": 30})
    assert r.status_code == 200
    assert time.perf_counter() - started >= 0.15


def test_client_disconnect_mid_stream(emu: EmulatorServer, capfd: pytest.CaptureFixture[str]) -> None:
    emu.configure(token_delay=0.002)
    with (
        httpx.Client(base_url=emu.base_url) as c,
        c.stream(
            "POST", "/chat/completions", json={"model": "m", "messages": convo(), "stream": True}
        ) as response,
    ):
        for i, _ in enumerate(response.iter_lines()):
            if i > 3:
                break
    time.sleep(0.1)
    emu.configure(token_delay=0)
    with httpx.Client(base_url=emu.base_url) as c:
        assert stream(c, {"model": "m", "messages": convo()}).finish_reason == "stop"
    deadline = time.time() + 2
    while time.time() < deadline and not any(e.get("disconnected") for e in emu.requests):
        time.sleep(0.05)
    assert emu.requests[0].get("disconnected") is True
    assert "Traceback" not in capfd.readouterr().err


# --------------------------------------------------------------------------- prefill styles


def prefilled(text: str, **extra: Any) -> list[dict[str, Any]]:
    return [*convo(), {"role": "assistant", "content": text, **extra}]


def test_prefill_style_vllm(emu: EmulatorServer, client: httpx.Client) -> None:
    emu.configure(prefill_style="vllm")
    answer = uncapped_answer(convo())
    head = answer[:100]
    r = post(client, {"model": "m", "messages": prefilled(head), "max_tokens": 10}).json()
    assert answer.startswith(r["choices"][0]["message"]["content"])  # answered from scratch
    body = {
        "model": "m",
        "messages": prefilled(head),
        "max_tokens": 10,
        "continue_final_message": True,
        "add_generation_prompt": False,
    }
    r = post(client, body).json()
    assert answer.startswith(head + r["choices"][0]["message"]["content"])
    assert emu.requests[-1]["continued"] is True
    assert emu.requests[-2]["continued"] is False
    assert post(client, {**body, "add_generation_prompt": True}).status_code == 400


def test_prefill_style_prefix(emu: EmulatorServer, client: httpx.Client) -> None:
    emu.configure(prefill_style="prefix")
    answer = uncapped_answer(convo())
    head = answer[:100]
    r = post(client, {"model": "m", "messages": prefilled(head), "max_tokens": 10}).json()
    assert answer.startswith(r["choices"][0]["message"]["content"])
    r = post(client, {"model": "m", "messages": prefilled(head, prefix=True), "max_tokens": 10}).json()
    assert answer.startswith(head + r["choices"][0]["message"]["content"])


def test_prefill_style_none_and_trailing_whitespace(emu: EmulatorServer, client: httpx.Client) -> None:
    answer = uncapped_answer(convo())
    emu.configure(prefill_style="none")
    r = post(client, {"model": "m", "messages": prefilled(answer[:100]), "max_tokens": 10}).json()
    assert answer.startswith(r["choices"][0]["message"]["content"])
    emu.configure(prefill_style="assistant", reject_trailing_whitespace_prefill=True)
    r = post(client, {"model": "m", "messages": prefilled("Dear team, ")})
    assert r.status_code == 400
    assert (
        r.json()["error"]["message"]
        == "messages: final assistant content cannot end with trailing whitespace"
    )
    assert post(client, {"model": "m", "messages": prefilled("Dear team,")}).status_code == 200


def test_user_written_prefill(client: httpx.Client) -> None:
    answer = uncapped_answer(convo())
    r = post(client, {"model": "m", "messages": prefilled("Dear team,"), "max_tokens": 20}).json()
    first = r["choices"][0]["message"]["content"]
    assert first == answer[: len(first)]
    r = post(client, {"model": "m", "messages": prefilled("Dear team," + first)}).json()
    assert first + r["choices"][0]["message"]["content"] == answer


# --------------------------------------------------------------------------- auth, caching, admin


def test_api_key(emu: EmulatorServer, client: httpx.Client) -> None:
    emu.configure(api_key="sekrit")
    emu.inject({"type": "status", "status": 500})
    assert post(client, {"model": "m", "messages": convo()}).status_code == 401
    r = client.post(
        "/chat/completions",
        json={"model": "m", "messages": convo()},
        headers={"Authorization": "Bearer wrong"},
    )
    assert r.status_code == 401
    assert "error" in r.json()
    headers = {"Authorization": "Bearer sekrit"}
    assert (
        client.post(
            "/chat/completions", json={"model": "m", "messages": convo()}, headers=headers
        ).status_code
        == 500
    )
    assert (
        client.post(
            "/chat/completions", json={"model": "m", "messages": convo()}, headers=headers
        ).status_code
        == 200
    )


def test_cached_tokens(client: httpx.Client) -> None:
    answer = uncapped_answer(convo())
    first = post(client, {"model": "m", "messages": convo(), "max_tokens": 10}).json()
    assert first["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    p1 = first["usage"]["prompt_tokens"]
    second = post(client, {"model": "m", "messages": prefilled(answer[:60]), "max_tokens": 10}).json()
    assert second["usage"]["prompt_tokens_details"]["cached_tokens"] == p1
    p2 = second["usage"]["prompt_tokens"]
    third = post(client, {"model": "m", "messages": prefilled(answer[:90]), "max_tokens": 10}).json()
    assert third["usage"]["prompt_tokens_details"]["cached_tokens"] == p2
    other = post(client, {"model": "m", "messages": prefilled("Something else"), "max_tokens": 10}).json()
    assert (
        other["usage"]["prompt_tokens_details"]["cached_tokens"] == p1
    )  # only the empty prefill is a prefix
    new = post(client, {"model": "m", "messages": convo("Another question"), "max_tokens": 10}).json()
    assert new["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


def test_admin_endpoints(emu: EmulatorServer) -> None:
    with httpx.Client(base_url=emu.url, timeout=10) as c:
        health = c.get("/_emulator/health").json()
        assert health["status"] == "ok"
        assert health["settings"]["cap"] == 16384
        r = c.post("/_emulator/config", json={"cap": 12, "context_length": 0, "api_key": "k"})
        assert r.status_code == 200
        assert r.json()["settings"]["cap"] == 12
        assert r.json()["settings"]["api_key"] == "***"
        assert emu.settings.context_length is None
        assert emu.settings.api_key == "k"
        assert c.post("/_emulator/config", json={"cap": "big"}).status_code == 400
        assert c.post("/_emulator/config", json={"nope": 1}).status_code == 400
        assert c.post("/_emulator/config", json={"overflow": "explode"}).status_code == 400
        r = c.post("/_emulator/faults", json={"faults": [{"type": "status", "status": 429}]})
        assert r.status_code == 200
        assert r.json()["pending_faults"] == 1
        assert c.post("/_emulator/faults", json={"faults": [{"type": "boom"}]}).status_code == 400
        chat = c.post(
            "/v1/openai/chat/completions",
            json={"model": "m", "messages": convo()},
            headers={"Authorization": "Bearer k"},
        )
        assert chat.status_code == 429
        chat = c.post(
            "/v1/openai/chat/completions",
            json={"model": "m", "messages": convo()},
            headers={"Authorization": "Bearer k"},
        )
        assert chat.json()["usage"]["completion_tokens"] == 12
        log = c.get("/_emulator/requests").json()["requests"]
        assert [e["status"] for e in log] == [429, 200]
        entry = log[1]
        assert entry["model"] == "m"
        assert entry["messages"] == 1
        assert entry["stream"] is False
        assert entry["prompt_tokens"] == prompt_tokens(convo())
        assert entry["max_tokens"] is None
        assert entry["effective_max_tokens"] == 12
        assert entry["completion_tokens"] == 12
        assert entry["finish_reason"] == "length"
        assert entry["prefill_chars"] == 0
        assert entry["fault"] is None
        assert c.post("/_emulator/reset").status_code == 200
        assert c.get("/_emulator/requests").json()["requests"] == []
        assert emu.settings == EmulatorSettings()
        models = c.get("/v1/openai/models").json()
        assert models["object"] == "list"
        assert len(models["data"]) >= 2
        assert c.get("/v1/models").status_code == 200
        missing = c.get("/nowhere")
        assert missing.status_code == 404
        assert "error" in missing.json()
        assert c.post("/v1/openai/embeddings", json={}).status_code == 404


def test_bad_requests(client: httpx.Client) -> None:
    r = client.post("/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("invalid request: ")
    r = post(client, {"model": "m"})
    assert r.status_code == 400
    assert "messages" in r.json()["error"]["message"]
    assert post(client, {"model": "m", "messages": []}).status_code == 400
    assert post(client, {"model": "m", "messages": convo(), "max_tokens": 0}).status_code == 400
    assert post(client, {"model": "m", "messages": convo(), "stop": 5}).status_code == 400


def test_in_process_control_validates(emu: EmulatorServer) -> None:
    with pytest.raises(ValueError, match="unknown setting"):
        emu.configure(bogus=1)
    with pytest.raises(ValueError, match="after_tokens"):
        emu.inject({"type": "cut"})
    emu.configure(cap=5)
    emu.reset()
    assert emu.settings.cap == 16384
    assert emu.pending_faults == []
    assert emu.requests == []


def test_settings_given_at_construction_survive_reset() -> None:
    with EmulatorServer(EmulatorSettings(cap=33, answer_tokens=50)) as server:
        server.configure(cap=2)
        server.reset()
        assert server.settings.cap == 33
        r = httpx.post(server.base_url + "/chat/completions", json={"model": "m", "messages": convo("hi")})
        assert r.json()["usage"]["completion_tokens"] == 33
    assert not server.running


# --------------------------------------------------------------------------- CLI


def test_cli_arguments_to_settings() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(
        [
            "--cap",
            "100",
            "--context-length",
            "0",
            "--reasoning",
            "field",
            "--usage-chunk",
            "separate",
            "--api-key",
            "k",
            "--token-delay",
            "0.5",
        ]
    )
    settings = cli.settings_from_args(args)
    assert (args.host, args.port) == ("127.0.0.1", 8765)
    assert settings.cap == 100
    assert settings.context_length is None
    assert settings.reasoning == "field"
    assert settings.usage_chunk == "separate"
    assert settings.api_key == "k"
    assert settings.token_delay == 0.5
    assert settings.answer_tokens == EmulatorSettings().answer_tokens


def test_python_dash_m_runs_the_server() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "longform.emulator", "--port", "0", "--cap", "9", "--context-length", "5000"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(
            r"longform emulator listening on (http://127\.0\.0\.1:\d+/v1/openai) "
            r"\(cap 9, context 5000\)\n",
            line,
        )
        assert match, line
        r = httpx.post(match.group(1) + "/chat/completions", json={"model": "m", "messages": convo("hi")})
        assert r.json()["usage"]["completion_tokens"] == 9
    finally:
        proc.terminate()
        proc.wait(timeout=10)
