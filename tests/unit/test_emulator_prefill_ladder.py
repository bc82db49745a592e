"""The emulator's prefill behaviours of real servers, over real HTTP (loopback) with httpx:
refusals in the real wordings, a prefill ignored (the reply starts over), and a "continue
message" conversation answered as real models do (overlap, preamble, a lost seam space)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import httpx
import pytest

from longform.emulator import cli
from longform.emulator.errors import (
    GATEWAY_PREFILL_MESSAGE,
    LLAMACPP_PREFILL_THINKING_MESSAGE,
    PREFILL_REJECTED_MESSAGE,
    PREFILL_WHITESPACE_MESSAGE,
    error_body,
)
from longform.emulator.model import canonical_output, count_tokens, tokenize, uncapped_answer
from longform.emulator.server import EmulatorServer, EmulatorSettings

PROMPT = (
    "Write a guide to building dry stone walls [emulator answer_tokens=300] [emulator reasoning_tokens=40]"
)
HEAD = "# Guide Building Dry Stone"  # the first five tokens of the canonical answer to PROMPT
PREAMBLE = "Sure, continuing where I left off:\n\n"


def convo() -> list[dict[str, Any]]:
    return [{"role": "user", "content": PROMPT}]


def prefilled(text: str, **extra: Any) -> list[dict[str, Any]]:
    return [*convo(), {"role": "assistant", "content": text, **extra}]


def continue_message(so_far: str, instruction: str = "Continue exactly where you stopped.") -> list[Any]:
    return [*prefilled(so_far), {"role": "user", "content": instruction}]


@pytest.fixture(autouse=True)
def _fresh(emu: EmulatorServer) -> None:
    emu.reset()


def post(client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return client.post("/chat/completions", json=body)


def content_of(client: httpx.Client, body: dict[str, Any]) -> str:
    r = post(client, body)
    assert r.status_code == 200, r.text
    return str(r.json()["choices"][0]["message"]["content"])


def stream_content(client: httpx.Client, body: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """(the streamed content, the usage) of a streamed request."""
    content, usage = "", None
    with client.stream("POST", "/chat/completions", json={"stream": True, **body}) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[len("data: ") :])
            usage = chunk.get("usage") or usage
            for choice in chunk["choices"]:
                content += choice["delta"].get("content") or ""
    return content, usage


def rest_after(so_far: str) -> str:
    """The canonical answer after ``so_far`` (a prefix of it)."""
    answer = uncapped_answer(convo())
    assert answer.startswith(so_far)
    return answer[len(so_far) :]


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("body_style", ["nested", "flat", "llamacpp"])
@pytest.mark.parametrize(
    ("refusal", "message"),
    [
        ("anthropic", PREFILL_REJECTED_MESSAGE),
        ("llamacpp_thinking", LLAMACPP_PREFILL_THINKING_MESSAGE),
        ("gateway", GATEWAY_PREFILL_MESSAGE),
    ],
)
def test_prefill_refusal_wordings(
    emu: EmulatorServer, client: httpx.Client, refusal: str, message: str, body_style: str
) -> None:
    emu.configure(prefill_style="reject", prefill_refusal=refusal, error_body=body_style)
    for streamed in (False, True):
        r = post(client, {"model": "m", "messages": prefilled(HEAD), "stream": streamed})
        assert r.status_code == 400
        assert r.headers["content-type"] == "application/json"
        if refusal == "llamacpp_thinking":  # llama-server's shape whatever error_body is
            assert r.json() == {"error": {"code": 400, "message": message, "type": "invalid_request_error"}}
        else:
            assert r.json() == error_body(400, message, body_style)  # type: ignore[arg-type]
        assert emu.requests[-1]["status"] == 400
    assert post(client, {"model": "m", "messages": convo()}).status_code == 200


def test_prefill_refusal_exact_texts(emu: EmulatorServer, client: httpx.Client) -> None:
    assert PREFILL_REJECTED_MESSAGE == (
        "This model does not support assistant message prefill. "
        "The conversation must end with a user message."
    )
    assert (
        LLAMACPP_PREFILL_THINKING_MESSAGE
        == "Assistant response prefill is incompatible with enable_thinking."
    )
    assert GATEWAY_PREFILL_MESSAGE == "The final message must be a user message"
    emu.configure(prefill_style="reject")  # prefill_refusal="anthropic" by default
    r = post(client, {"model": "m", "messages": prefilled(HEAD)})
    assert r.json() == {
        "error": {"message": PREFILL_REJECTED_MESSAGE, "type": "invalid_request_error", "code": 400}
    }
    assert "does not support assistant message prefill" in r.text


def test_trailing_whitespace_refusal_is_anthropics(emu: EmulatorServer, client: httpx.Client) -> None:
    assert (
        PREFILL_WHITESPACE_MESSAGE == "messages: final assistant content cannot end with trailing whitespace"
    )
    emu.configure(reject_trailing_whitespace_prefill=True)
    for ending in (" ", "\n", "\n\n", "\t"):
        r = post(client, {"model": "m", "messages": prefilled(HEAD + ending)})
        assert r.status_code == 400
        assert r.json() == error_body(400, PREFILL_WHITESPACE_MESSAGE)
        assert r.json()["error"]["type"] == "invalid_request_error"
    assert content_of(client, {"model": "m", "messages": prefilled(HEAD), "max_tokens": 1}) == " Walls"
    # a prefill that is not continued is not checked; nor is a continue message's answer so far
    emu.configure(prefill_style="none")
    assert post(client, {"model": "m", "messages": prefilled(HEAD + " ")}).status_code == 200
    emu.configure(prefill_style="assistant")
    assert post(client, {"model": "m", "messages": continue_message(HEAD + " ")}).status_code == 200


# --------------------------------------------------------------------------- a prefill ignored


@pytest.mark.parametrize(
    ("style", "extra_body", "extra_message"),
    [
        ("none", {}, {}),
        ("vllm", {}, {}),
        ("vllm", {"continue_final_message": False}, {}),
        ("prefix", {}, {}),
        ("prefix", {}, {"prefix": False}),
    ],
)
def test_an_ignored_prefill_restarts_from_the_beginning(
    emu: EmulatorServer,
    client: httpx.Client,
    style: str,
    extra_body: dict[str, Any],
    extra_message: dict[str, Any],
) -> None:
    answer = uncapped_answer(convo())
    emu.configure(prefill_style=style)
    so_far = answer[:400]
    body = {"model": "m", "messages": prefilled(so_far, **extra_message), "max_tokens": 10, **extra_body}
    content = content_of(client, body)
    assert content == "".join(tokenize(answer)[:10])
    assert content.startswith(HEAD)  # the reply repeats the opening of the answer
    entry = emu.requests[-1]
    assert entry["prefill_ignored"] is True
    assert entry["continued"] is False
    assert entry["prefill_chars"] == len(so_far)
    assert entry["continue_message"] is False
    streamed, usage = stream_content(client, {**body, "max_tokens": None})
    assert streamed == answer
    assert usage is not None
    assert usage["completion_tokens"] == 300


def test_a_continued_prefill_is_not_ignored(emu: EmulatorServer, client: httpx.Client) -> None:
    for style, extra_body, extra_message in (
        ("assistant", {}, {}),
        ("vllm", {"continue_final_message": True}, {}),
        ("prefix", {}, {"prefix": True}),
    ):
        emu.configure(prefill_style=style)
        body = {"model": "m", "messages": prefilled(HEAD, **extra_message), "max_tokens": 1, **extra_body}
        assert content_of(client, body) == " Walls"
        assert emu.requests[-1]["prefill_ignored"] is False
        assert emu.requests[-1]["continued"] is True
    content_of(client, {"model": "m", "messages": convo(), "max_tokens": 1})
    assert emu.requests[-1]["prefill_ignored"] is False


def test_the_new_turn_fault_opens_one_new_turn_in_a_job_that_continued_until_then(
    emu: EmulatorServer, client: httpx.Client
) -> None:
    emu.configure(prefill_style="assistant")
    so_far = uncapped_answer(convo())[:200]
    body = {
        "model": "m",
        "messages": prefilled(so_far),
        "max_tokens": 6,
        "stream_options": {"include_usage": True},
    }
    honoured, usage = stream_content(client, body)
    assert honoured == rest_after(so_far)[: len(honoured)] and usage is not None
    emu.inject({"type": "new_turn", "lead": "\n\n"})
    new_turn, turn_usage = stream_content(client, body)
    assert new_turn.startswith("\n\n") and new_turn[2:3].isupper()  # a new answer, not the word's rest
    assert turn_usage is not None and turn_usage["prompt_tokens"] == usage["prompt_tokens"] + 6
    assert emu.requests[-1]["prefill_ignored"] is True
    again, _ = stream_content(client, body)  # one request only: the next prefill is continued
    assert again == honoured
    with pytest.raises(ValueError, match="header_tokens"):
        emu.inject({"type": "new_turn", "header_tokens": "six"})


# --------------------------------------------------------------------------- continue message


def test_continue_message_answers_with_the_rest_of_the_answer(
    emu: EmulatorServer, client: httpx.Client
) -> None:
    answer = uncapped_answer(convo())
    rest = rest_after(HEAD)
    r = post(client, {"model": "m", "messages": continue_message(HEAD)})
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == rest  # no echo, no overlap
    assert r.json()["choices"][0]["finish_reason"] == "stop"
    assert r.json()["usage"]["completion_tokens"] == 300 - 5 == count_tokens(rest)
    entry = emu.requests[-1]
    assert entry["continue_message"] is True
    assert (entry["overlap_chars"], entry["preamble_chars"]) == (0, 0)
    assert (entry["continued"], entry["prefill_ignored"], entry["prefill_chars"]) == (False, False, 0)
    assert entry["echoed_chars"] == 0
    streamed, usage = stream_content(client, {"model": "m", "messages": continue_message(HEAD)})
    assert streamed == rest
    assert usage is not None
    assert usage["completion_tokens"] == 295
    # the same text as a prefill continuation of the original conversation
    assert content_of(client, {"model": "m", "messages": prefilled(HEAD)}) == rest
    assert HEAD + rest == answer


def test_continue_message_any_instruction_and_any_prefill_style(
    emu: EmulatorServer, client: httpx.Client
) -> None:
    rest = rest_after(HEAD)
    for instruction in ("Continue.", "Please go on from where you stopped, without repeating.", "?"):
        assert content_of(client, {"model": "m", "messages": continue_message(HEAD, instruction)}) == rest
    for style in ("reject", "none", "vllm", "prefix"):  # no trailing assistant message: nothing refused
        emu.configure(prefill_style=style, echo_prefill="merged")
        assert content_of(client, {"model": "m", "messages": continue_message(HEAD)}) == rest
        assert emu.requests[-1]["continue_message"] is True
        assert emu.requests[-1]["echoed_chars"] == 0


def test_continue_message_loop_reproduces_the_answer(client: httpx.Client) -> None:
    answer = uncapped_answer(convo())
    so_far = ""
    for _ in range(20):
        messages = continue_message(so_far) if so_far else convo()
        r = post(client, {"model": "m", "messages": messages, "max_tokens": 40}).json()
        so_far += r["choices"][0]["message"]["content"]
        if r["choices"][0]["finish_reason"] == "stop":
            break
    assert so_far == answer


def test_continue_message_answer_so_far_mid_token_and_user_written(client: httpx.Client) -> None:
    answer = uncapped_answer(convo())
    assert content_of(client, {"model": "m", "messages": continue_message(HEAD[:-2])}) == answer[24:]
    # text the model never wrote: the whole answer follows it, as for a prefill
    assert content_of(client, {"model": "m", "messages": continue_message("Once upon a time")}) == answer


def test_continue_overlap_chars(emu: EmulatorServer, client: httpx.Client) -> None:
    rest = rest_after(HEAD)
    emu.configure(continue_overlap_chars=12)  # the last 12: "ng Dry Stone", cut at a word start
    r = post(client, {"model": "m", "messages": continue_message(HEAD)}).json()
    assert r["choices"][0]["message"]["content"] == "Dry Stone" + rest
    assert r["usage"]["completion_tokens"] == 2 + 295
    assert emu.requests[-1]["overlap_chars"] == len("Dry Stone")
    emu.configure(continue_overlap_chars=3)  # "one": no word start in it, kept as it is
    assert content_of(client, {"model": "m", "messages": continue_message(HEAD)}) == "one" + rest
    assert emu.requests[-1]["overlap_chars"] == 3
    emu.configure(continue_overlap_chars=1000)  # more than there is: all of it
    assert content_of(client, {"model": "m", "messages": continue_message(HEAD)}) == HEAD + rest
    assert emu.requests[-1]["overlap_chars"] == len(HEAD)
    streamed, usage = stream_content(client, {"model": "m", "messages": continue_message(HEAD)})
    assert streamed == HEAD + rest
    assert usage is not None
    assert usage["completion_tokens"] == 300
    # only a continue message: a continued prefill is not repeated
    assert content_of(client, {"model": "m", "messages": prefilled(HEAD)}) == rest
    assert emu.requests[-1]["overlap_chars"] == 0


def test_continue_preamble(emu: EmulatorServer, client: httpx.Client) -> None:
    rest = rest_after(HEAD)
    emu.configure(continue_preamble=PREAMBLE)
    r = post(client, {"model": "m", "messages": continue_message(HEAD)}).json()
    assert r["choices"][0]["message"]["content"] == PREAMBLE + rest
    assert r["usage"]["completion_tokens"] == count_tokens(PREAMBLE) + 295
    entry = emu.requests[-1]
    assert (entry["preamble_chars"], entry["overlap_chars"]) == (len(PREAMBLE), 0)
    # max_tokens counts what is sent, the preamble included
    r = post(client, {"model": "m", "messages": continue_message(HEAD), "max_tokens": 3}).json()
    assert r["choices"][0]["message"]["content"] == "Sure, continuing where"
    assert r["choices"][0]["finish_reason"] == "length"
    assert r["usage"]["completion_tokens"] == 3
    streamed, _ = stream_content(client, {"model": "m", "messages": continue_message(HEAD)})
    assert streamed == PREAMBLE + rest
    assert content_of(client, {"model": "m", "messages": convo(), "max_tokens": 1}) == "#"  # not a continue


def test_continue_drop_seam_space(emu: EmulatorServer, client: httpx.Client) -> None:
    rest = rest_after(HEAD)
    assert rest.startswith(" Walls")
    emu.configure(continue_drop_seam_space=True)
    r = post(client, {"model": "m", "messages": continue_message(HEAD)}).json()
    assert r["choices"][0]["message"]["content"] == rest[1:]
    assert r["usage"]["completion_tokens"] == 295
    # at a paragraph break all the leading whitespace goes
    answer = uncapped_answer(convo())
    cut = answer.index("\n\n")
    assert content_of(client, {"model": "m", "messages": continue_message(answer[:cut])}) == (
        answer[cut:].lstrip()
    )
    # no whitespace at the seam: nothing dropped
    assert content_of(client, {"model": "m", "messages": continue_message(HEAD + " ")}) == rest[1:]
    assert content_of(client, {"model": "m", "messages": continue_message(HEAD[:-2])}) == answer[24:]


def test_continue_all_three_imperfections(emu: EmulatorServer, client: httpx.Client) -> None:
    rest = rest_after(HEAD)
    emu.configure(continue_overlap_chars=5, continue_preamble=PREAMBLE, continue_drop_seam_space=True)
    expected = PREAMBLE + "Stone" + rest[1:]
    assert content_of(client, {"model": "m", "messages": continue_message(HEAD)}) == expected
    streamed, usage = stream_content(client, {"model": "m", "messages": continue_message(HEAD)})
    assert streamed == expected
    assert usage is not None
    assert usage["completion_tokens"] == count_tokens(PREAMBLE + "Stone") + 295
    entry = emu.requests[-1]
    assert (entry["continue_message"], entry["overlap_chars"], entry["preamble_chars"]) == (
        True,
        5,
        len(PREAMBLE),
    )


def test_continue_message_with_reasoning_models(emu: EmulatorServer, client: httpx.Client) -> None:
    inline = canonical_output(convo(), model="x-thinking")
    so_far = inline.content[:80]
    body = {"model": "x-thinking", "messages": continue_message(so_far)}
    assert content_of(client, body) == inline.content[80:]
    field = canonical_output(convo(), model="x-reasoning")
    so_far = f"<think>\n{field.reasoning}\n</think>\n\n{HEAD}"
    emu.configure(continue_overlap_chars=5)
    message = post(client, {"model": "x-reasoning", "messages": continue_message(so_far)}).json()
    message = message["choices"][0]["message"]
    assert message["content"] == "Stone" + field.answer[len(HEAD) :]  # overlap from the answer part
    assert message["reasoning_content"] is None  # the reasoning was closed: none follows


# --------------------------------------------------------------------------- settings and CLI


def test_new_settings_validate(emu: EmulatorServer) -> None:
    with pytest.raises(
        ValueError, match="prefill_refusal must be one of anthropic, llamacpp_thinking, gateway"
    ):
        emu.configure(prefill_refusal="openai")
    with pytest.raises(ValueError, match="continue_overlap_chars must be an integer >= 0"):
        emu.configure(continue_overlap_chars=-1)
    with pytest.raises(ValueError, match="continue_overlap_chars"):
        emu.configure(continue_overlap_chars=True)
    with pytest.raises(ValueError, match="continue_preamble must be a string"):
        emu.configure(continue_preamble=None)
    with pytest.raises(ValueError, match="continue_drop_seam_space must be true or false"):
        emu.configure(continue_drop_seam_space=1)
    defaults = EmulatorSettings()
    assert defaults.prefill_refusal == "anthropic"
    assert (defaults.continue_overlap_chars, defaults.continue_preamble) == (0, "")
    assert defaults.continue_drop_seam_space is False
    with httpx.Client(base_url=emu.url, timeout=10) as c:
        new = {
            "prefill_refusal": "gateway",
            "continue_overlap_chars": 7,
            "continue_preamble": PREAMBLE,
            "continue_drop_seam_space": True,
        }
        r = c.post("/_emulator/config", json=new)
        assert r.status_code == 200
        assert {k: r.json()["settings"][k] for k in new} == new
        assert c.post("/_emulator/config", json={"continue_preamble": 3}).status_code == 400
        assert c.post("/_emulator/config", json={"prefill_refusal": "x"}).status_code == 400
        c.post("/_emulator/reset")
    assert emu.settings == defaults


def test_cli_prefill_flags() -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(
        [
            "--prefill-style",
            "reject",
            "--prefill-refusal",
            "llamacpp_thinking",
            "--reject-trailing-whitespace-prefill",
            "--continue-overlap-chars",
            "40",
            "--continue-preamble",
            PREAMBLE,
            "--continue-drop-seam-space",
        ]
    )
    settings = cli.settings_from_args(args)
    assert settings.prefill_style == "reject"
    assert settings.prefill_refusal == "llamacpp_thinking"
    assert settings.reject_trailing_whitespace_prefill is True
    assert settings.continue_overlap_chars == 40
    assert settings.continue_preamble == PREAMBLE
    assert settings.continue_drop_seam_space is True
    assert cli.settings_from_args(parser.parse_args([])) == EmulatorSettings()
    with pytest.raises(SystemExit):
        parser.parse_args(["--prefill-refusal", "openai"])
    with pytest.raises(ValueError, match="continue_overlap_chars"):
        cli.settings_from_args(parser.parse_args(["--continue-overlap-chars", "-2"]))


@pytest.mark.parametrize("mode", ["once", "always"])
def test_continue_repeat_sends_the_end_of_the_answer_again(
    emu: EmulatorServer, client: httpx.Client, mode: str
) -> None:
    """As transformers serve's model did: asked to continue, it writes the previous stretch again,
    word for word (its last max_tokens tokens); "once": asked again, it continues."""
    emu.configure(continue_repeat=mode)
    so_far = HEAD + rest_after(HEAD)[:200]
    body = {"model": "m", "messages": continue_message(so_far), "max_tokens": 12}
    first = post(client, body).json()["choices"][0]
    assert so_far.endswith(first["message"]["content"]) and count_tokens(first["message"]["content"]) == 12
    assert first["finish_reason"] == "length" and emu.requests[-1]["repeated"] is True
    again = content_of(client, body)
    if mode == "once":
        assert again == rest_after(so_far)[: len(again)] and not so_far.endswith(again)
    else:
        assert again == first["message"]["content"]
    emu.reset()  # forgets what it was asked
    emu.configure(continue_repeat=mode)
    assert post(client, body).json()["choices"][0]["message"]["content"] == first["message"]["content"]
