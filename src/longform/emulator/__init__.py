"""A deterministic DeepInfra-compatible LLM server on loopback, for tests, benchmarks and local runs."""

from longform.emulator.model import (
    Canonical,
    GenerationSettings,
    Plan,
    canonical_output,
    count_tokens,
    full_content,
    plan_continuation,
    prompt_tokens,
    tokenize,
    uncapped_answer,
    uncapped_content,
)
from longform.emulator.server import EmulatorServer, EmulatorSettings, context_error_message, error_body

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
