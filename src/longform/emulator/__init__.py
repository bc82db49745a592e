"""A deterministic DeepInfra-compatible LLM server on loopback, for tests, benchmarks and local runs.

It answers OpenAI chat completions with the deterministic model of ``model``: a per-request
output cap, a context window with the real providers' 400 wordings (and llama.cpp's
behaviour, or a stream that ends silently), prefill continuation in several provider styles
(optionally echoing the prefill back, as llama.cpp does; or refused in the real wordings),
"continue message" conversations answered as real models do, ``stop`` sequences, SSE streaming
with usage, reasoning output, and injectable faults.

- ``settings``: ``EmulatorSettings``, the values of each field, fault validation;
- ``errors``: the error wordings and JSON bodies of the real providers;
- ``protocol``: a chat request validated and its reply planned (``ReplyPlan``);
- ``prefill``: the answer so far (a prefill continued, ignored or refused; a "continue
  message" conversation) and the echo of a continued prefill;
- ``sse``: a plan sent as an SSE stream or one JSON body, faults applied;
- ``server``: ``EmulatorServer``: HTTP, admin endpoints, fault queue, request log, lifecycle;
- ``model`` / ``textgen``: the deterministic output; ``cli``: the command line.
"""

from longform.emulator.continuation import Plan, plan_continuation
from longform.emulator.errors import context_error_message, error_body
from longform.emulator.model import (
    Canonical,
    GenerationSettings,
    canonical_output,
    count_tokens,
    full_content,
    prompt_tokens,
    tokenize,
    uncapped_answer,
    uncapped_content,
)
from longform.emulator.server import EmulatorServer
from longform.emulator.settings import EmulatorSettings

__all__ = [
    "Canonical",
    "EmulatorServer",
    "EmulatorSettings",
    "GenerationSettings",
    "Plan",
    "canonical_output",
    "context_error_message",
    "count_tokens",
    "error_body",
    "full_content",
    "plan_continuation",
    "prompt_tokens",
    "tokenize",
    "uncapped_answer",
    "uncapped_content",
]
