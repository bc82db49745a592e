"""The emulator's settings: ``EmulatorSettings``, the values each field takes, their
validation, and the validation of injected faults."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_type_hints

from longform.emulator.model import ReasoningMode

__all__ = [
    "ECHO_PIECE_CHARS",
    "FAULT_TYPES",
    "ContextErrorStyle",
    "EchoPrefillMode",
    "EmulatorSettings",
    "ErrorBodyStyle",
    "Fault",
    "OverflowMode",
    "PrefillRefusal",
    "PrefillStyle",
    "UsageChunkMode",
    "check_fault",
]

OverflowMode = Literal["reject", "clamp", "llamacpp", "litellm", "none", "silent_stream"]
ContextErrorStyle = Literal["requested", "too_large"]
ErrorBodyStyle = Literal["nested", "flat", "llamacpp"]
UsageChunkMode = Literal["last", "separate"]
PrefillStyle = Literal["assistant", "vllm", "prefix", "none", "new_turn", "reject"]
PrefillRefusal = Literal["anthropic", "llamacpp_thinking", "gateway"]
EchoPrefillMode = Literal["off", "merged", "split"]
CompletionsMode = Literal["off", "chatml"]
ContinueRepeatMode = Literal["off", "once", "always"]

FAULT_TYPES = (
    "status",
    "cut",
    "slow",
    "stall",
    "error_event",
    "malformed",
    "split_surrogates",
    "ignore_max_tokens",
    "new_turn",
)
"""What a fault does (one request each):

- "status": answer HTTP ``status`` (``retry_after``, ``message`` optional);
- "cut" / "stall": drop the connection / pause ``seconds`` after ``after_tokens`` tokens;
- "slow": ``token_delay`` seconds per token;
- "error_event": after ``after_tokens`` tokens, report an error inside the 200 reply and end it:
  ``shape`` "openrouter" (an ``error`` object beside ``choices[0].finish_reason`` "error", or
  the fault's ``finish_reason``), "openai" (one ``data: {"error": ...}`` line), "finish" (only
  ``finish_reason`` "error"/"abort"); not streamed: OpenRouter's choice with ``error``;
- "malformed": fields a lenient client must read as missing (``fields``, default all):
  "usage" (``prompt_tokens: "n/a"``, ``completion_tokens`` as a string,
  ``prompt_tokens_details: [1]``, ``estimated_cost: "free"``), "model" (``model: 123``),
  "delta" (an extra event whose ``delta`` is a string);
- "split_surrogates": every astral character of the streamed text is sent as two events (its
  UTF-16 high surrogate, then its low one, as a JavaScript proxy slicing code units does);
- "ignore_max_tokens": the request's ``max_tokens`` is ignored (as the setting, for one request);
- "new_turn": a prefill is taken for a finished turn as ``prefill_style="new_turn"`` does, for one
  request: a server that honoured the prefill until then opens a new turn in the middle of a job
  (``header_tokens``: the prompt tokens reported past a continued prefill's, default 6; ``lead``:
  the text the new answer begins with, default none: glued).
"""
ERROR_SHAPES = ("openrouter", "openai", "finish")
MALFORMED_FIELDS = ("usage", "model", "delta")
Fault = dict[str, Any]
"""An injected fault, as ``check_fault`` returns it."""
ECHO_PIECE_CHARS = 7
"""echo_prefill="split": the echoed prefill is sent in deltas of at most this many characters."""


@dataclass
class EmulatorSettings:
    """Server behaviour; every field can be changed at run time with ``configure``."""

    cap: int = 16384
    """Per-request output cap (tokens)."""
    context_length: int | None = 131072
    """Context window in tokens (None: unlimited)."""
    answer_tokens: int = 2000
    """Answer length when the prompt does not ask for one."""
    reasoning_tokens: int = 300
    """Reasoning length when the prompt does not ask for one."""
    reasoning: ReasoningMode = "auto"
    """Reasoning style: "auto" (by model name), "none", "field", "inline"."""
    token_delay: float = 0.0
    """Seconds per emitted token."""
    overflow: OverflowMode = "reject"
    """A request over the context window (prompt >= context, or prompt + max_tokens > context):

    - "reject": HTTP 400 (``context_error_style`` wording, ``error_body`` style);
    - "clamp": a prompt that leaves room is served with max_tokens reduced to what fits;
    - "llamacpp": as llama.cpp's llama-server: only prompt >= context is rejected (400,
      ``llamacpp_context_error_body`` whatever ``error_body`` is); otherwise generation stops
      with "length" when the context is full (limit min(max_tokens, cap, context - prompt));
    - "litellm": as "llamacpp" behind LiteLLM's proxy: the 400 is llama.cpp's wording wrapped
      (``litellm.ContextWindowExceededError: ...``, type ``invalid_request_error``, code "400");
    - "none": no context check at all (``transformers serve``): a prompt past the window is
      answered anyway, up to max_tokens;
    - "silent_stream": a streamed request gets HTTP 200 and a stream that ends cleanly after
      ``silent_stream_tokens`` token deltas, with no finish_reason, no usage and no
      ``data: [DONE]``; without streaming, the same 400 as "reject".
    """
    silent_stream_tokens: int = 0
    """overflow="silent_stream": token deltas sent before the stream ends (0: none)."""
    context_error_style: ContextErrorStyle = "requested"
    error_body: ErrorBodyStyle = "nested"
    usage_chunk: UsageChunkMode = "last"
    keepalive_every: int = 0
    """Emit an SSE comment ``: keep-alive`` every N tokens (0: never)."""
    keepalive_comment: Literal["keep-alive", "ping"] = "keep-alive"
    """The keep-alive comment's text (LiteLLM's proxy sends ``: ping``)."""
    done_marker: bool = True
    """End a stream with ``data: [DONE]`` (``transformers serve`` does not)."""
    unknown_fields: Literal["ignore", "reject"] = "ignore"
    """"reject": ``continue_final_message`` / ``add_generation_prompt`` get ``transformers serve``'s
    422 ``{"detail": "Unexpected fields in the request: {...}"}``."""
    api_key: str | None = None
    price_input_per_mtok: float = 0.10
    price_output_per_mtok: float = 0.40
    prefill_style: PrefillStyle = "assistant"
    """What a trailing assistant message (a prefill) gets:

    - "assistant": continued;
    - "vllm": continued with ``continue_final_message: true`` (400 together with
      ``add_generation_prompt: true``), else ignored;
    - "prefix": continued when the message has ``"prefix": true``, else ignored;
    - "none": ignored;
    - "new_turn": ignored as llama-cpp-python's server ignores it: the reply is a new answer that
      does not restart the opening, glued to the text (the canonical answer from its first
      sentence that begins past the prefill's length, with no space before it), and the prompt
      tokens it reports are no more than a continued prefill's;
    - "reject": HTTP 400 in the ``prefill_refusal`` wording.

    An ignored prefill is taken for a finished turn: the reply is the canonical answer from
    its beginning (logged ``prefill_ignored: true``)."""
    repeat_penalty: float = 1.0
    """The ``repeat_penalty`` of a request that sends none (llama-cpp-python 0.3.36: 1.1). Other
    than 1.0 a continued answer (a prefill continued, or an open assistant turn on
    ``/v1/completions``) parts from the uncapped answer at the seam: as a penalty over the tokens
    of the current request only does (the tokens before the seam are prompt, never penalised).
    A request's own ``repeat_penalty`` (longform's ``provider_params``) overrides it."""
    new_turn_header_tokens: int | None = None
    """prefill_style="new_turn": the prompt tokens reported past a continued prefill's. None: 4
    fewer, giving nothing away (the hardest case: only the probe finds it); 6 is what
    llama-cpp-python's server 0.3.36 really reports with SmolLM2's template (an end-of-turn and a
    new assistant header; measured in tests/conformance/test_llama_cpp_python.py)."""
    new_turn_lead: str = ""
    """prefill_style="new_turn": the text the new answer begins with ("": glued to the text, as
    llama-cpp-python's; a paragraph break or a heading, as a model beginning an answer may)."""
    prefill_refusal: PrefillRefusal = "anthropic"
    """prefill_style="reject": whose 400 ("anthropic", "llamacpp_thinking", "gateway"); see
    ``errors.PREFILL_REFUSAL_MESSAGES``."""
    reject_trailing_whitespace_prefill: bool = False
    """A continued prefill ending in whitespace gets Anthropic's 400."""
    continue_overlap_chars: int = 0
    """A "continue message" conversation (an assistant message, the answer so far, then a
    user message): the reply first repeats the last N characters of the answer so far,
    starting at the first word start among them if there is one."""
    continue_preamble: str = ""
    """A "continue message" conversation: text the reply starts with (before any overlap)."""
    continue_drop_seam_space: bool = False
    """A "continue message" conversation: the whitespace the true continuation starts with
    (spaces, newlines) is not sent."""
    continue_repeat: ContinueRepeatMode = "off"
    """A "continue message" conversation: the reply repeats the end of the answer so far word
    for word (its last ``max_tokens`` tokens: the previous chunk, as transformers serve's model
    did) instead of continuing it: "once" the first time a given answer so far is sent (asked
    again, it continues), "always" every time, "off" never."""
    ignore_max_tokens: bool = False
    """Generate up to the cap (and the context) whatever ``max_tokens`` the request asks for, as a
    server that ignores it does (usage then reports what was generated)."""
    echo_prefill: EchoPrefillMode = "off"
    """Send a continued prefill back at the start of the reply (as llama.cpp's llama-server):
    "merged" (streamed: with the first new delta), "split" (streamed: in deltas of at most
    ``ECHO_PIECE_CHARS`` characters before the new ones), "off". Without streaming, both
    put it at the start of the message. usage.completion_tokens counts only new tokens."""
    completions: CompletionsMode = "off"
    """Serve ``POST /v1/completions`` (raw prompts) and ``GET /props`` with this chat template
    ("chatml"; ``completions.py``); "off": both 404, as DeepInfra."""
    verbose: bool = False

    def to_dict(self, *, redact: bool = True) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if redact and data["api_key"] is not None:
            data["api_key"] = "***"
        return data

    def updated(self, **fields: Any) -> EmulatorSettings:
        """A copy with ``fields`` changed; raises ValueError on unknown fields or bad values."""
        for name, value in fields.items():
            _check_setting(name, value)
        if fields.get("context_length") == 0:
            fields["context_length"] = None
        return dataclasses.replace(self, **fields)


_SETTING_TYPES: dict[str, Any] = get_type_hints(EmulatorSettings)
_INT_SETTINGS = {
    "cap": 1,
    "answer_tokens": 0,
    "reasoning_tokens": 0,
    "keepalive_every": 0,
    "silent_stream_tokens": 0,
    "continue_overlap_chars": 0,
}
_FLOAT_SETTINGS = ("token_delay", "price_input_per_mtok", "price_output_per_mtok", "repeat_penalty")


def _check_setting(name: str, value: Any) -> None:
    if name not in _SETTING_TYPES:
        raise ValueError(f"unknown setting {name!r}")
    if name in _INT_SETTINGS:
        if not is_int(value) or value < _INT_SETTINGS[name]:
            raise ValueError(f"{name} must be an integer >= {_INT_SETTINGS[name]}")
    elif name == "context_length":
        if value is not None and (not is_int(value) or value < 0):
            raise ValueError("context_length must be a positive integer, 0 or null (unlimited)")
    elif name in _FLOAT_SETTINGS:
        if not is_number(value) or value < 0:
            raise ValueError(f"{name} must be a number >= 0")
    elif name == "new_turn_header_tokens":
        if value is not None and not is_int(value):
            raise ValueError("new_turn_header_tokens must be an integer or null")
    elif name == "api_key":
        if value is not None and not isinstance(value, str):
            raise ValueError("api_key must be a string or null")
    elif name in ("continue_preamble", "new_turn_lead"):
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string")
    elif name in (
        "reject_trailing_whitespace_prefill",
        "continue_drop_seam_space",
        "verbose",
        "ignore_max_tokens",
        "done_marker",
    ):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
    else:
        choices = get_args(_SETTING_TYPES[name])
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_fault(fault: Any) -> Fault:
    """Validate one fault description; returns a copy."""
    if not isinstance(fault, Mapping):
        raise ValueError("a fault must be an object")
    kind = fault.get("type")
    if kind not in FAULT_TYPES:
        raise ValueError(f"fault type must be one of {', '.join(FAULT_TYPES)}")
    if kind == "status" and (not is_int(fault.get("status")) or not 400 <= fault["status"] <= 599):
        raise ValueError("a status fault needs an integer 'status' between 400 and 599")
    if "retry_after" in fault and not is_number(fault["retry_after"]):
        raise ValueError("'retry_after' must be a number of seconds")
    if kind == "error_event" and fault.get("shape", "openrouter") not in ERROR_SHAPES:
        raise ValueError(f"an error_event fault's 'shape' must be one of {', '.join(ERROR_SHAPES)}")
    if kind == "error_event" and not isinstance(fault.get("finish_reason", "error"), str):
        raise ValueError("an error_event fault's 'finish_reason' must be a string")
    fields = fault.get("fields", list(MALFORMED_FIELDS))
    if kind == "malformed" and (
        not isinstance(fields, list) or not fields or any(f not in MALFORMED_FIELDS for f in fields)
    ):
        raise ValueError(f"a malformed fault's 'fields' must be a list of {', '.join(MALFORMED_FIELDS)}")
    if kind in ("cut", "stall", "error_event") and (
        not is_int(fault.get("after_tokens")) or fault["after_tokens"] < 0
    ):
        raise ValueError(f"a {kind} fault needs an integer 'after_tokens' >= 0")
    if kind == "stall" and (not is_number(fault.get("seconds")) or fault["seconds"] < 0):
        raise ValueError("a stall fault needs a number 'seconds' >= 0")
    if kind == "slow" and (not is_number(fault.get("token_delay")) or fault["token_delay"] < 0):
        raise ValueError("a slow fault needs a number 'token_delay' >= 0")
    if kind == "new_turn" and not is_int(fault.get("header_tokens", 6)):
        raise ValueError("a new_turn fault's 'header_tokens' must be an integer")
    if kind == "new_turn" and not isinstance(fault.get("lead", ""), str):
        raise ValueError("a new_turn fault's 'lead' must be a string")
    if "match" in fault and (not isinstance(fault["match"], str) or not fault["match"]):
        raise ValueError("'match' must be a non-empty string (text the request's body holds)")
    if "skip" in fault and (not is_int(fault["skip"]) or fault["skip"] < 0):
        raise ValueError("'skip' must be an integer >= 0 (matching requests let through first)")
    return dict(fault)
