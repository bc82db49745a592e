"""The emulator's raw completions (``POST /v1/completions``) and its ``GET /props``.

Served when ``EmulatorSettings.chat_template`` names a template (``"chatml"``): ``/props`` then
answers ``{"chat_template": ...}`` as llama.cpp's llama-server does, and a completion's ``prompt``
is read back through that template (ChatML: ``<|im_start|>role\\n...<|im_end|>\\n``; an open final
assistant turn is the answer so far) into the conversation the chat endpoint would have been sent.
The reply is that conversation's canonical continuation, as the chat endpoint would continue the
prefill, in the ``text_completion`` shape (``choices[0].text``); no echo of the prompt.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from longform_core.chat_template import CHATML_TEMPLATE

from longform.emulator.errors import ErrorReply
from longform.emulator.protocol import ReplyPlan

__all__ = ["COMPLETION_PATHS", "TEMPLATES", "chat_body_of", "completion_chunks", "completion_json"]

COMPLETION_PATHS = ("/v1/openai/completions", "/v1/completions")
TEMPLATES = {"chatml": CHATML_TEMPLATE}
_TURN = re.compile(r"<\|im_start\|>(\w+)\n(.*?)(?:<\|im_end\|>\n?|$)", re.S)


def chat_body_of(raw: bytes) -> bytes | ErrorReply:
    """The chat body a completion request stands for (its prompt read as ChatML), or a 400."""
    try:
        body = json.loads(raw)
    except ValueError as error:
        return ErrorReply(400, f"invalid request: body is not valid JSON ({error})")
    prompt = body.get("prompt") if isinstance(body, dict) else None
    if not isinstance(prompt, str) or not prompt:
        return ErrorReply(400, "invalid request: 'prompt' must be a non-empty string")
    messages = [{"role": role, "content": content} for role, content in _TURN.findall(prompt)]
    if not messages:
        return ErrorReply(400, "invalid request: the prompt is not in the served chat template")
    if not prompt.endswith("<|im_end|>\n") and messages[-1]["role"] == "assistant":
        pass  # an open assistant turn: the answer so far, continued
    elif prompt.endswith("<|im_start|>assistant\n"):
        messages.append({"role": "assistant", "content": ""})
    chat = {k: v for k, v in body.items() if k != "prompt"}
    if messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
        messages.pop()
    chat["messages"] = messages
    return json.dumps(chat).encode()


def _text(plan: ReplyPlan) -> list[str]:
    _, new = plan.deltas()
    return [piece for _, piece in new]


def completion_json(plan: ReplyPlan) -> dict[str, Any]:
    """The non-streamed ``text_completion`` body."""
    return {
        "id": f"cmpl-{uuid.uuid4().hex[:24]}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": plan.model,
        "choices": [
            {"index": 0, "text": "".join(_text(plan)), "logprobs": None, "finish_reason": plan.finish_reason}
        ],
        "usage": plan.usage,
    }


def completion_chunks(plan: ReplyPlan) -> list[bytes]:
    """The SSE events of a streamed completion: one per token, the finish (with usage), [DONE]."""
    head = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "model": plan.model}

    def event(text: str, finish: str | None, **extra: Any) -> bytes:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        return b"data: " + json.dumps({**head, "choices": [choice], **extra}).encode() + b"\n\n"

    events = [event(piece, None) for piece in _text(plan)]
    usage = {"usage": plan.usage} if plan.include_usage else {}
    events.append(event("", plan.finish_reason, **usage))
    events.append(b"data: [DONE]\n\n")
    return events
