"""Emulator behaviours seen on real servers, over real HTTP (loopback) with httpx:
llama-server's prefill echo and context handling, and a stream that ends without a finish."""

from __future__ import annotations

import argparse
import json
import socket
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from longform.emulator import cli
from longform.emulator.errors import context_error_message, error_body
from longform.emulator.model import canonical_output, prompt_tokens, tokenize, uncapped_answer
from longform.emulator.server import EmulatorServer, EmulatorSettings
from longform.emulator.settings import ECHO_PIECE_CHARS

PROMPT = (
    "Write a guide to building dry stone walls [emulator answer_tokens=300] [emulator reasoning_tokens=40]"
)
HEAD = "# Guide Building Dry Stone"  # the first five tokens of the canonical answer to PROMPT


def convo() -> list[dict[str, Any]]:
    return [{"role": "user", "content": PROMPT}]


def prefilled(text: str) -> list[dict[str, Any]]:
    return [*convo(), {"role": "assistant", "content": text}]


@pytest.fixture(autouse=True)
def _fresh(emu: EmulatorServer) -> None:
    emu.reset()


@dataclass
class Streamed:
    deltas: list[tuple[str, str]] = field(default_factory=list)
    """(field, text) of every content / reasoning_content delta after the role chunk."""
    finish_reasons: list[str | None] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def content(self) -> str:
        return "".join(text for name, text in self.deltas if name == "content")

    @property
    def reasoning(self) -> str:
        return "".join(text for name, text in self.deltas if name == "reasoning_content")

    @property
    def finish_reason(self) -> str | None:
        return next((f for f in reversed(self.finish_reasons) if f), None)


def stream(client: httpx.Client, body: dict[str, Any]) -> Streamed:
    out = Streamed()
    with client.stream("POST", "/chat/completions", json={"stream": True, **body}) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():  # raises RemoteProtocolError on a cut body
            if not line:
                continue
            out.lines.append(line)
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[len("data: ") :])
            if "usage" in chunk:
                out.usage = chunk["usage"]
            for choice in chunk["choices"]:
                delta = choice["delta"]
                out.finish_reasons.append(choice["finish_reason"])
                if "role" in delta:
                    assert delta == {"role": "assistant", "content": ""}
                    continue
                out.deltas.extend(
                    (name, delta[name]) for name in ("reasoning_content", "content") if name in delta
                )
    return out


def post(client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return client.post("/chat/completions", json=body)


# --------------------------------------------------------------------------- prefill echo


def test_head_is_a_prefix_of_the_canonical_answer() -> None:
    answer = uncapped_answer(convo())
    assert answer.startswith(HEAD + " Walls")
    assert tokenize(HEAD) == ["#", " Guide", " Building", " Dry", " Stone"]


def test_echo_prefill_merged_streamed(emu: EmulatorServer, client: httpx.Client) -> None:
    body = {"model": "m", "messages": prefilled(HEAD), "max_tokens": 10}
    plain = stream(client, body)
    emu.configure(echo_prefill="merged")
    echoed = stream(client, body)
    assert echoed.deltas[0] == ("content", "# Guide Building Dry Stone Walls")
    assert echoed.deltas == [("content", HEAD + plain.deltas[0][1]), *plain.deltas[1:]]
    assert echoed.content == uncapped_answer(convo())[: len(echoed.content)]
    assert echoed.finish_reason == "length"
    assert echoed.lines[-1] == "data: [DONE]"
    assert echoed.usage is not None
    assert plain.usage is not None
    assert echoed.usage["completion_tokens"] == plain.usage["completion_tokens"] == 10
    assert emu.requests[-1]["echoed_chars"] == len(HEAD)
    assert emu.requests[-2]["echoed_chars"] == 0


def test_echo_prefill_split_streamed(emu: EmulatorServer, client: httpx.Client) -> None:
    body = {"model": "m", "messages": prefilled(HEAD), "max_tokens": 10}
    plain = stream(client, body)
    emu.configure(echo_prefill="split")
    echoed = stream(client, body)
    assert ECHO_PIECE_CHARS == 7
    echo = [("content", "# Guide"), ("content", " Buildi"), ("content", "ng Dry "), ("content", "Stone")]
    assert echoed.deltas == echo + plain.deltas
    assert echoed.deltas[4] == ("content", " Walls")
    assert echoed.usage is not None
    assert echoed.usage["completion_tokens"] == 10
    assert emu.requests[-1]["echoed_chars"] == len(HEAD)


@pytest.mark.parametrize("mode", ["merged", "split"])
def test_echo_prefill_non_streamed(emu: EmulatorServer, client: httpx.Client, mode: str) -> None:
    body = {"model": "m", "messages": prefilled(HEAD), "max_tokens": 10}
    plain = post(client, body).json()
    emu.configure(echo_prefill=mode)
    echoed = post(client, body).json()
    new = plain["choices"][0]["message"]["content"]
    assert echoed["choices"][0]["message"]["content"] == HEAD + new
    assert echoed["choices"][0]["message"]["content"].startswith("# Guide Building Dry Stone Walls")
    assert echoed["usage"]["completion_tokens"] == plain["usage"]["completion_tokens"] == 10
    assert echoed["usage"]["prompt_tokens"] == plain["usage"]["prompt_tokens"]
    assert emu.requests[-1]["echoed_chars"] == len(HEAD)


def test_echo_prefill_user_written_prefill(emu: EmulatorServer, client: httpx.Client) -> None:
    emu.configure(echo_prefill="merged")
    prefill = "Once upon a time, a sailor"
    s = stream(client, {"model": "m", "messages": prefilled(prefill), "max_tokens": 3})
    # nothing of the answer is in this prefill: the whole answer follows it
    assert s.deltas == [("content", prefill + "#"), ("content", " Guide"), ("content", " Building")]
    assert s.usage is not None
    assert s.usage["completion_tokens"] == 3


@pytest.mark.parametrize("mode", ["merged", "split"])
def test_echo_prefill_nothing_new(emu: EmulatorServer, client: httpx.Client, mode: str) -> None:
    answer = uncapped_answer(convo())
    emu.configure(echo_prefill=mode)
    s = stream(client, {"model": "m", "messages": prefilled(answer)})
    if mode == "merged":
        assert s.deltas == [("content", answer)]  # the echo alone, as one delta
    else:
        assert len(s.deltas) == -(-len(answer) // ECHO_PIECE_CHARS)
        assert all(0 < len(text) <= ECHO_PIECE_CHARS for _, text in s.deltas)
    assert s.content == answer
    assert s.finish_reason == "stop"
    assert s.usage is not None
    assert s.usage["completion_tokens"] == 0


def test_echo_prefill_off_by_default_and_not_for_an_uncontinued_prefill(
    emu: EmulatorServer, client: httpx.Client
) -> None:
    s = stream(client, {"model": "m", "messages": prefilled(HEAD), "max_tokens": 2})
    assert s.deltas == [("content", " Walls"), ("content", "\n\nA")]
    emu.configure(echo_prefill="merged", prefill_style="none")  # the prefill is not continued
    s = stream(client, {"model": "m", "messages": prefilled(HEAD), "max_tokens": 2})
    assert s.deltas == [("content", "#"), ("content", " Guide")]
    assert emu.requests[-1]["continued"] is False
    assert emu.requests[-1]["echoed_chars"] == 0


def test_echo_prefill_reasoning_field_closed_think(emu: EmulatorServer, client: httpx.Client) -> None:
    canonical = canonical_output(convo(), model="x-reasoning", seed=None)
    prefill = f"<think>\n{canonical.reasoning}\n</think>\n\n{HEAD}"
    body = {"model": "x-reasoning", "messages": prefilled(prefill), "max_tokens": 5}
    plain = stream(client, body)
    assert all(name == "content" for name, _ in plain.deltas)
    emu.configure(echo_prefill="merged")
    s = stream(client, body)
    assert s.deltas == [
        ("reasoning_content", canonical.reasoning),
        ("content", HEAD + plain.deltas[0][1]),
        *plain.deltas[1:],
    ]
    assert s.usage is not None
    assert s.usage["completion_tokens"] == 5
    assert emu.requests[-1]["echoed_chars"] == len(canonical.reasoning) + len(HEAD)
    emu.configure(echo_prefill="split")
    s = stream(client, body)
    assert s.reasoning == canonical.reasoning
    assert s.content == HEAD + plain.content
    assert s.deltas[-len(plain.deltas) :] == plain.deltas
    assert all(len(text) <= ECHO_PIECE_CHARS for _, text in s.deltas[: -len(plain.deltas)])
    message = post(client, body).json()["choices"][0]["message"]
    assert message["reasoning_content"] == canonical.reasoning
    assert message["content"] == HEAD + plain.content
    assert message["content"] == canonical.answer[: len(message["content"])]


def test_echo_prefill_reasoning_field_open_think(emu: EmulatorServer, client: httpx.Client) -> None:
    canonical = canonical_output(convo(), model="x-reasoning", seed=None)
    head = "".join(canonical.reasoning_pieces[:4])
    assert head == "Okay, the user wants"
    body = {"model": "x-reasoning", "messages": prefilled(f"<think>\n{head}"), "max_tokens": 3}
    emu.configure(echo_prefill="merged")
    s = stream(client, body)
    assert s.deltas == [
        ("reasoning_content", "Okay, the user wants a"),
        ("reasoning_content", " piece"),
        ("reasoning_content", " about"),
    ]
    assert emu.requests[-1]["echoed_chars"] == len(head)
    message = post(client, {**body, "max_tokens": 100}).json()["choices"][0]["message"]
    assert message["reasoning_content"] == canonical.reasoning
    assert message["content"] == "".join(canonical.answer_pieces[:64])


def test_echo_prefill_inline_style_echoes_the_prefill_as_sent(
    emu: EmulatorServer, client: httpx.Client
) -> None:
    canonical = canonical_output(convo(), model="x-thinking", seed=None)
    prefill = canonical.content[:80]
    assert prefill.startswith("<think>\nOkay, the user")
    body = {"model": "x-thinking", "messages": prefilled(prefill), "max_tokens": 4}
    plain = stream(client, body)
    emu.configure(echo_prefill="merged")
    s = stream(client, body)
    assert s.deltas == [("content", prefill + plain.deltas[0][1]), *plain.deltas[1:]]
    assert s.content == canonical.content[: len(s.content)]
    content = post(client, body).json()["choices"][0]["message"]["content"]
    assert content == prefill + plain.content
    assert emu.requests[-1]["echoed_chars"] == 80


# --------------------------------------------------------------------------- llama.cpp context


@pytest.mark.parametrize("body_style", ["nested", "flat", "llamacpp"])
@pytest.mark.parametrize("streamed", [False, True])
def test_llamacpp_rejects_a_prompt_that_fills_the_context(
    emu: EmulatorServer, client: httpx.Client, body_style: str, streamed: bool
) -> None:
    p = prompt_tokens(convo())
    emu.configure(overflow="llamacpp", context_length=p, error_body=body_style)
    r = post(client, {"model": "m", "messages": convo(), "max_tokens": 10, "stream": streamed})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {
        "error": {
            "code": 400,
            "message": (
                f"request ({p} tokens) exceeds the available context size ({p} tokens), try increasing it"
            ),
            "type": "exceed_context_size_error",
            "n_prompt_tokens": p,
            "n_ctx": p,
        }
    }
    assert emu.requests[-1]["status"] == 400


def test_llamacpp_generates_until_the_context_is_full(emu: EmulatorServer, client: httpx.Client) -> None:
    p = prompt_tokens(convo())
    answer = uncapped_answer(convo())
    emu.configure(overflow="llamacpp", context_length=p + 1)  # prompt < n_ctx: one token of room
    r = post(client, {"model": "m", "messages": convo(), "max_tokens": 4096})
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "#"
    assert r.json()["choices"][0]["finish_reason"] == "length"
    emu.configure(context_length=p + 30)
    s = stream(client, {"model": "m", "messages": convo(), "max_tokens": 4096})
    assert s.finish_reason == "length"
    assert s.usage is not None
    assert s.usage["completion_tokens"] == 30
    assert s.content == answer[: len(s.content)]
    assert emu.requests[-1]["effective_max_tokens"] == 30
    r = post(client, {"model": "m", "messages": convo(), "max_tokens": 12})  # max_tokens still applies
    assert r.json()["usage"]["completion_tokens"] == 12
    emu.configure(cap=7)
    r = post(client, {"model": "m", "messages": convo()})
    assert r.json()["usage"]["completion_tokens"] == 7
    emu.configure(cap=16384, context_length=p + 1000)
    r = post(client, {"model": "m", "messages": convo(), "max_tokens": 5000})
    assert r.json()["choices"][0]["message"]["content"] == answer
    assert r.json()["choices"][0]["finish_reason"] == "stop"


def test_error_body_llamacpp_style(emu: EmulatorServer, client: httpx.Client) -> None:
    emu.configure(error_body="llamacpp")
    emu.inject({"type": "status", "status": 503, "message": "Loading model"})
    r = post(client, {"model": "m", "messages": convo()})
    assert r.status_code == 503
    assert r.json() == {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
    r = post(client, {"model": "m", "messages": []})
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert r.json()["error"]["code"] == 400
    assert error_body(501, "x", "llamacpp")["error"]["type"] == "not_supported_error"
    assert error_body(502, "x", "llamacpp")["error"]["type"] == "server_error"


# --------------------------------------------------------------------------- silent stream


def test_silent_stream_ends_cleanly_without_finish(emu: EmulatorServer, client: httpx.Client) -> None:
    p = prompt_tokens(convo())
    emu.configure(overflow="silent_stream", context_length=p + 100, silent_stream_tokens=5)
    body = {"model": "m", "messages": convo(), "max_tokens": 101}
    s = stream(client, body)  # no RemoteProtocolError: the chunked body is terminated
    assert s.deltas == [("content", t) for t in ("#", " Guide", " Building", " Dry", " Stone")]
    assert s.finish_reasons == [None] * 6
    assert s.usage is None
    assert "data: [DONE]" not in s.lines
    assert all(line.startswith("data: {") for line in s.lines)
    entry = emu.requests[-1]
    assert entry["status"] == 200
    assert entry["silent_stream"] is True
    assert entry["finish_reason"] is None
    assert entry["completion_tokens"] == 5
    assert "disconnected" not in entry
    # the same connection serves the next request; one that fits streams normally
    ok = stream(client, {**body, "max_tokens": 100})
    assert ok.finish_reason == "length"
    assert ok.lines[-1] == "data: [DONE]"
    assert emu.requests[-1]["silent_stream"] is False


def test_silent_stream_no_text_and_prompt_over_the_context(emu: EmulatorServer, client: httpx.Client) -> None:
    p = prompt_tokens(convo())
    emu.configure(overflow="silent_stream", context_length=p)  # silent_stream_tokens=0
    s = stream(client, {"model": "m", "messages": convo()})
    assert s.deltas == []
    assert s.finish_reasons == [None]  # only the role delta
    assert s.usage is None
    assert len(s.lines) == 1
    emu.configure(silent_stream_tokens=3)
    s = stream(
        client, {"model": "x-reasoning", "messages": convo(), "stream_options": {"include_usage": True}}
    )
    canonical = canonical_output(convo(), model="x-reasoning", seed=None)
    assert s.deltas == [("reasoning_content", t) for t in canonical.reasoning_pieces[:3]]
    assert s.finish_reason is None
    assert s.usage is None


def test_silent_stream_raw_bytes_keep_the_connection(emu: EmulatorServer) -> None:
    p = prompt_tokens(convo())
    emu.configure(overflow="silent_stream", context_length=p + 10, silent_stream_tokens=1)
    payload = json.dumps({"model": "m", "messages": convo(), "max_tokens": 11, "stream": True}).encode()
    request = (
        f"POST /v1/openai/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while not data.endswith(b"\r\n0\r\n\r\n"):
            more = sock.recv(65536)
            assert more, data
            data += more
        head, _, chunked = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert b"Transfer-Encoding: chunked" in head
        assert b"[DONE]" not in chunked
        assert b'"finish_reason":"' not in chunked
        assert b'"usage"' not in chunked
        assert b'"content":"#"' in chunked
        sock.sendall(request)  # the connection was not closed
        more = sock.recv(65536)
        assert more.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("body_style", ["nested", "flat"])
@pytest.mark.parametrize("wording", ["requested", "too_large"])
def test_silent_stream_non_streamed_gets_the_reject_400(
    emu: EmulatorServer, client: httpx.Client, wording: str, body_style: str
) -> None:
    p = prompt_tokens(convo())
    emu.configure(
        overflow="silent_stream",
        silent_stream_tokens=4,
        context_length=p + 100,
        context_error_style=wording,
        error_body=body_style,
    )
    body = {"model": "m", "messages": convo(), "max_tokens": 101}
    r = post(client, body)
    emu.configure(overflow="reject")
    rejected = post(client, body)
    assert r.status_code == rejected.status_code == 400
    assert r.json() == rejected.json()
    expected = context_error_message(p + 100, p, 101, wording)  # type: ignore[arg-type]
    assert r.json() == error_body(400, expected, body_style)  # type: ignore[arg-type]
    assert emu.requests[-2]["silent_stream"] is False
    emu.configure(overflow="silent_stream", context_length=p)
    r = post(client, {**body, "max_tokens": None})
    assert r.status_code == 400
    assert "your request has" in json.dumps(r.json())


# --------------------------------------------------------------------------- repeat penalty


def test_a_per_request_repeat_penalty_parts_a_continuation_from_the_uncapped_answer(
    emu: EmulatorServer, client: httpx.Client
) -> None:
    # llama-cpp-python 0.3.36: repeat_penalty 1.1 unless asked, over the current request's own
    # tokens only (tests/conformance/test_llama_cpp_python.py): a continued prefill is not the
    # uncapped answer's rest; asked 1.0 it is, and a fresh answer is the same either way
    emu.configure(repeat_penalty=1.1)
    answer = uncapped_answer(convo(), model="m", settings=emu.settings)
    head = "".join(tokenize(answer)[:20])
    fresh = post(client, {"model": "m", "messages": convo(), "max_tokens": 20}).json()
    assert fresh["choices"][0]["message"]["content"] == head
    body = {"model": "m", "messages": prefilled(head), "max_tokens": 30}
    penalised = post(client, body).json()["choices"][0]["message"]["content"]
    greedy = post(client, {**body, "repeat_penalty": 1.0}).json()["choices"][0]["message"]["content"]
    assert answer.startswith(head + greedy)
    assert not answer.startswith(head + penalised) and len(tokenize(penalised)) == 30
    with pytest.raises(ValueError, match="repeat_penalty must be a number >= 0"):
        emu.configure(repeat_penalty=-1)


# --------------------------------------------------------------------------- settings and CLI


def test_new_settings_validate(emu: EmulatorServer) -> None:
    with pytest.raises(ValueError, match="echo_prefill must be one of off, merged, split"):
        emu.configure(echo_prefill="on")
    with pytest.raises(ValueError, match="silent_stream_tokens must be an integer >= 0"):
        emu.configure(silent_stream_tokens=-1)
    with pytest.raises(ValueError, match="overflow must be one of"):
        emu.configure(overflow="silent")
    with httpx.Client(base_url=emu.url, timeout=10) as c:
        r = c.post("/_emulator/config", json={"overflow": "llamacpp", "echo_prefill": "split"})
        assert r.status_code == 200
        assert r.json()["settings"]["overflow"] == "llamacpp"
        assert r.json()["settings"]["echo_prefill"] == "split"
        assert c.post("/_emulator/config", json={"silent_stream_tokens": True}).status_code == 400


def test_cli_new_flags() -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(
        ["--echo-prefill", "split", "--overflow", "silent_stream", "--silent-stream-tokens", "3"]
    )
    settings = cli.settings_from_args(args)
    assert settings.echo_prefill == "split"
    assert settings.overflow == "silent_stream"
    assert settings.silent_stream_tokens == 3
    settings = cli.settings_from_args(
        parser.parse_args(["--overflow", "llamacpp", "--error-body", "llamacpp"])
    )
    assert (settings.overflow, settings.error_body) == ("llamacpp", "llamacpp")
    assert cli.settings_from_args(parser.parse_args([])) == EmulatorSettings()
    with pytest.raises(SystemExit):
        parser.parse_args(["--echo-prefill", "on"])
