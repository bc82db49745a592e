"""The emulator's real-stream faults (issue 15), on the wire: what a client actually receives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from longform.emulator.model import canonical_output, count_tokens
from longform.emulator.server import EmulatorServer, EmulatorSettings
from longform.emulator.settings import check_fault

PROMPT = "Write about harbour lights. [emulator answer_tokens=60] [emulator emoji]"
MESSAGES = [{"role": "user", "content": PROMPT}]
ANSWER = canonical_output(MESSAGES).answer


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorSettings()) as server:
        yield server


@pytest.fixture
def client(emu: EmulatorServer) -> Iterator[httpx.Client]:
    emu.reset()
    with httpx.Client(base_url=emu.base_url, timeout=10) as http:
        yield http


def data_lines(client: httpx.Client, **body: Any) -> list[str]:
    payload = {"model": "m", "messages": MESSAGES, "stream": True, **body}
    with client.stream("POST", "/chat/completions", json=payload) as response:
        return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


def content_of(lines: list[str]) -> str:
    text = ""
    for line in lines:
        obj = json.loads(line) if line != "[DONE]" else {}
        for choice in obj.get("choices") or []:
            if isinstance(choice.get("delta"), dict):
                text += choice["delta"].get("content") or ""
    return text


def test_the_emoji_directive_puts_astral_characters_in_the_answer() -> None:
    assert sum(ord(ch) > 0xFFFF for ch in ANSWER) == 60 // 7
    assert count_tokens(ANSWER) == 60


def test_error_event_openrouter_shape(emu: EmulatorServer, client: httpx.Client) -> None:
    emu.inject({"type": "error_event", "after_tokens": 10})
    lines = data_lines(client)
    last = json.loads(lines[-1])
    assert last["error"] == {"code": "server_error", "message": "Provider disconnected unexpectedly"}
    assert last["choices"][0]["finish_reason"] == "error"
    assert "[DONE]" not in lines
    assert count_tokens(content_of(lines)) == 10 and ANSWER.startswith(content_of(lines))
    assert emu.requests[-1]["finish_reason"] == "error"


def test_error_event_openai_shape_and_finish_abort(emu: EmulatorServer, client: httpx.Client) -> None:
    emu.inject({"type": "error_event", "after_tokens": 3, "shape": "openai"})
    assert json.loads(data_lines(client)[-1]) == {
        "error": {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
        }
    }
    emu.inject({"type": "error_event", "after_tokens": 100, "shape": "finish", "finish_reason": "abort"})
    lines = data_lines(client)
    last = json.loads(lines[-1])
    assert "error" not in last and last["choices"][0]["finish_reason"] == "abort"
    assert content_of(lines) == ANSWER  # past the last token: instead of the final chunk


def test_error_event_without_streaming_is_openrouters_in_band_error(
    emu: EmulatorServer, client: httpx.Client
) -> None:
    emu.inject({"type": "error_event", "after_tokens": 5})
    body = client.post("/chat/completions", json={"model": "m", "messages": MESSAGES}).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "error" and choice["error"]["code"] == 502
    assert count_tokens(choice["message"]["content"]) == 5


def test_malformed_fields(emu: EmulatorServer, client: httpx.Client) -> None:
    emu.inject({"type": "malformed"})
    lines = data_lines(client, max_tokens=20)
    objs = [json.loads(line) for line in lines if line != "[DONE]"]
    assert all(o["model"] == 123 for o in objs)
    assert any(c.get("delta") == "garbage" for o in objs for c in o["choices"])
    usage = objs[-1]["usage"]
    assert usage["prompt_tokens"] == "n/a" and usage["completion_tokens"] == "20"
    assert usage["prompt_tokens_details"] == [1] and usage["estimated_cost"] == "free"
    assert content_of(lines) == ANSWER[: len(content_of(lines))]


def test_split_surrogates_send_each_astral_character_as_two_events(
    emu: EmulatorServer, client: httpx.Client
) -> None:
    emu.inject({"type": "split_surrogates"})
    lines = data_lines(client)
    pieces = [json.loads(line)["choices"][0]["delta"].get("content", "") for line in lines[:-1]]
    highs = [p for p in pieces if p and 0xD800 <= ord(p[-1]) < 0xDC00]
    lows = [p for p in pieces if p and 0xDC00 <= ord(p[0]) < 0xE000]
    assert len(highs) == len(lows) == 60 // 7
    joined = "".join(pieces).encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    assert joined == ANSWER


def test_ignore_max_tokens_fault_and_setting(emu: EmulatorServer, client: httpx.Client) -> None:
    emu.inject({"type": "ignore_max_tokens"})
    assert content_of(data_lines(client, max_tokens=5)) == ANSWER
    assert count_tokens(content_of(data_lines(client, max_tokens=5))) == 5  # one request only
    emu.configure(ignore_max_tokens=True)
    assert content_of(data_lines(client, max_tokens=5)) == ANSWER


@pytest.mark.parametrize(
    "fault",
    [
        {"type": "error_event"},
        {"type": "error_event", "after_tokens": 1, "shape": "smoke"},
        {"type": "error_event", "after_tokens": 1, "finish_reason": 3},
        {"type": "malformed", "fields": ["colour"]},
        {"type": "malformed", "fields": []},
    ],
)
def test_bad_faults_are_refused(fault: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"fault"):
        check_fault(fault)
