"""Context-window errors of real servers and gateways, as they answer, each with its source.

Every row is a real answer (quoted from the server's source, a release, or an issue that pasted
the response), not a wording we made up. ``classify_error`` must recognise each one as a
:class:`ContextWindowExceeded` with the numbers it carries, and must leave the 400s that are not
about the context (bad model, bad parameter) as :class:`ProviderRequestInvalid`, never retried.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from longform_core.errors import ContextLimit, ContextWindowExceeded, ProviderRequestInvalid
from longform_core.provider_errors import classify_error


@dataclass(frozen=True)
class Wording:
    server: str
    status: int
    body: Any
    limit: ContextLimit  # context_length 0: the wording carries no context length
    source: str


def nested(message: str, **fields: Any) -> dict[str, Any]:
    return {"error": {"message": message, **fields}}


def flat(message: str) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": 400}


L = ContextLimit

CONTEXT_ERRORS = [
    Wording(
        "vLLM <= 0.9",
        400,
        flat(
            "This model's maximum context length is 16384 tokens. However, you requested 19591 tokens "
            "(9591 in the messages, 10000 in the completion). Please reduce the length of the messages "
            "or completion. None"
        ),
        L(16384, 9591, 10000),
        "vllm-project/vllm#20409; vllm 0.9.2 entrypoints/openai/serving_engine.py:563-575",
    ),
    Wording(
        "vLLM 0.10-0.13",
        400,
        nested(
            "'max_tokens' or 'max_completion_tokens' is too large: 8000. This model's maximum context "
            "length is 4096 tokens and your request has 2778 input tokens (8000 > 4096 - 2778). None",
            type="BadRequestError",
            param=None,
            code=400,
        ),
        L(4096, 2778, 8000),
        "vllm 0.10.2 entrypoints/openai/serving_engine.py:676-688 (quoted in opsconductor-ng)",
    ),
    Wording(
        "vLLM >= 0.15",
        400,
        nested(
            "'max_tokens' or 'max_completion_tokens' is too large: 16384. This model's maximum context "
            "length is 65536 tokens and your request has 52189 input tokens (16384 > 65536 - 52189). "
            "(parameter=max_tokens, value=16384)",
            type="BadRequestError",
            param="max_tokens",
            code=400,
        ),
        L(65536, 52189, 16384),
        "vllm 0.15.1 entrypoints/openai/engine/serving.py:1073-1092",
    ),
    Wording(
        "vLLM 0.10-0.17, prompt alone",
        400,
        nested(
            "This model's maximum context length is 8192 tokens. However, your request has 9001 input "
            "tokens. Please reduce the length of the input messages.",
            type="BadRequestError",
            code=400,
        ),
        L(8192, 9001),
        "vllm 0.10.2 entrypoints/openai/serving_engine.py (the brief's third wording)",
    ),
    Wording(
        "vLLM 0.17",
        400,
        nested(
            "You passed 3900 input tokens and requested 512 output tokens. However, the model's context "
            "length is only 4096 tokens, resulting in a maximum input length of 3584 tokens. Please "
            "reduce the length of the input prompt.",
            type="BadRequestError",
            param="input_tokens",
            code=400,
        ),
        L(4096, 3900, 512),
        "vllm 0.17.1 renderers/params.py:337 (template; numbers ours)",
    ),
    Wording(
        "vLLM 0.19",
        400,
        nested(
            "This model's maximum context length is 8192 tokens. However, you requested 1024 output "
            "tokens and your prompt contains 7500 input tokens, for a total of 8524 tokens "
            "(7500 + 1024 = 8524 > 8192). Please reduce the length of the input prompt or the number of "
            "requested output tokens.",
            type="BadRequestError",
            param="max_tokens",
            code=400,
        ),
        L(8192, 7500, 1024),
        "vllm 0.19.1 entrypoints/openai/engine/serving.py:760-773 (template; numbers ours)",
    ),
    Wording(
        "vLLM 0.20-0.31",
        400,
        nested(
            "This model's maximum context length is 8192 tokens. However, you requested 4096 output "
            "tokens and your prompt contains at least 4097 input tokens, for a total of at least 8193 "
            "tokens. Please reduce the length of the input prompt or the number of requested output tokens.",
            type="BadRequestError",
            param="input_tokens",
            code=400,
        ),
        L(8192, 4097, 4096),
        "vllm 0.20.0 renderers/params.py:419-430; quoted in a vLLM issue",
    ),
    Wording(
        "vLLM 0.33, max_tokens over the model length",
        400,
        nested(
            "max_tokens=5000 cannot be greater than max_model_len=4096. Please request fewer output "
            "tokens. (parameter=max_tokens, value=5000)",
            type="BadRequestError",
            code=400,
        ),
        L(4096, None, 5000),
        "vllm 0.33.0 entrypoints/openai/api_utils.py:234-270",
    ),
    Wording(
        "vLLM, engine check (all versions)",
        400,
        flat(
            "The decoder prompt (length 15983) is longer than the maximum model length of 8192. Make sure "
            "that `max_model_len` is no smaller than the number of text tokens plus multimodal tokens."
        ),
        L(8192, 15983),
        "linagora/openrag#128; vllm 0.33 v1/engine/input_processor.py:589-601",
    ),
    Wording(
        "llama.cpp llama-server",
        400,
        nested(
            "request (2060 tokens) exceeds the available context size (2048 tokens), try increasing it",
            code=400,
            type="exceed_context_size_error",
            n_prompt_tokens=2060,
            n_ctx=2048,
        ),
        L(2048, 2060),
        "ggml-org/llama.cpp tools/server/server-context.cpp update_slots(); seen on a real server "
        "(tests/conformance)",
    ),
    Wording(
        "llama.cpp, older wording without numbers in the message",
        400,
        nested(
            "the request exceeds the available context size, try increasing it",
            code=400,
            type="exceed_context_size_error",
            n_prompt_tokens=1140,
            n_ctx=1024,
        ),
        L(1024, 1140),
        "an older llama-server, quoted in jshawtime/saywhatwant",
    ),
    Wording(
        "SGLang",
        400,
        flat("The input (43028 tokens) is longer than the model's context length (40960 tokens)."),
        L(40960, 43028),
        "a real SGLang log (also quoted as Together's in third-party fixtures)",
    ),
    Wording(
        "Ollama (context shift disabled)",
        400,
        nested(
            "the prompt is longer than the context length currently available to the model; shorten the "
            "prompt, adjust the context length in settings, or use a model with a longer context length",
            type="invalid_request_error",
        ),
        L(0),
        "ollama/ollama llm/llama_server.go:295-300 (by default Ollama truncates instead)",
    ),
    Wording(
        "Hugging Face TGI",
        422,
        {
            "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 8192. Given: "
            "6204 `inputs` tokens and 2047 `max_new_tokens`",
            "error_type": "validation",
        },
        L(8192, 6204, 2047),
        "huggingface/chat-ui#1149; TGI router/src/validation.rs:997-1002",
    ),
    Wording(
        "Together AI (TGI wording)",
        400,
        nested(
            "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4097. Given: 80125 "
            "`inputs` tokens and 4096 `max_new_tokens`",
            type="invalid_request_error",
            param="max_tokens",
            code=None,
        ),
        L(4097, 80125, 4096),
        "BerriAI/litellm#4934",
    ),
    Wording(
        "OpenAI",
        400,
        nested(
            "This model's maximum context length is 4097 tokens. However, your messages resulted in 4294 "
            "tokens. Please reduce the length of the messages.",
            type="invalid_request_error",
            param="messages",
            code="context_length_exceeded",
        ),
        L(4097, 4294),
        "chathub-dev/chathub#126",
    ),
    Wording(
        "OpenAI, newer models (no numbers)",
        400,
        nested(
            "Your input exceeds the context window of this model. Please adjust your input and try again.",
            type="invalid_request_error",
            param="input",
            code="context_length_exceeded",
        ),
        L(0),
        "dyad-sh/dyad#1672; BerriAI/litellm#15968",
    ),
    Wording(
        "Anthropic, prompt alone",
        400,
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "prompt is too long: 208310 tokens > 200000 maximum",
            },
        },
        L(200000, 208310),
        "anthropics/claude-code#12186",
    ),
    Wording(
        "Anthropic, prompt + max_tokens",
        400,
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "input length and `max_tokens` exceed context limit: 199759 + 8192 > 200000, "
                "decrease input length or `max_tokens` and try again",
            },
        },
        L(200000, 199759, 8192),
        "continuedev/continue#6080",
    ),
    Wording(
        "DeepSeek",
        400,
        nested(
            "This model's maximum context length is 131072 tokens. However, you requested 131134 tokens "
            "(122942 in the messages, 8192 in the completion). Please reduce the length of the messages "
            "or completion.",
            type="invalid_request_error",
            param=None,
            code="invalid_request_error",
        ),
        L(131072, 122942, 8192),
        "evalstate/fast-agent#621",
    ),
    Wording(
        "Groq (no numbers, structured code)",
        400,
        nested(
            "Please reduce the length of the messages or completion.",
            type="invalid_request_error",
            param="messages",
            code="context_length_exceeded",
        ),
        L(0),
        "letta-ai/letta#1963",
    ),
    Wording(
        "OpenRouter",
        400,
        nested(
            "This endpoint's maximum context length is 131072 tokens. However, you requested about 141607 "
            "tokens (10535 of text input, 131072 in the output). Please reduce the length of either one, "
            'or use the "middle-out" transform to compress your prompt automatically.',
            code=400,
            metadata={"provider_name": None},
        ),
        L(131072, 10535, 131072),
        "Aider-AI/aider#3721",
    ),
    Wording(
        "DeepInfra (2024, answered as a 500)",
        500,
        nested("Requested input length 99009 exceeds maximum input length 8192"),
        L(8192, 99009),
        "langchain-ai/langchain PR #25671",
    ),
    Wording(
        "Mistral",
        400,
        {
            "object": "error",
            "message": "Prompt contains 159202 tokens and 0 draft tokens, too large for model with 131072 "
            "maximum context length",
            "type": "invalid_request_invalid_args",
            "param": None,
            "code": "3051",
        },
        L(131072, 159202),
        "docs.mistral.ai known limitations; a user's script quoting the API's answer",
    ),
    Wording(
        "Gemini",
        400,
        {
            "error": {
                "code": 400,
                "message": "The input token count (1200293) exceeds the maximum number of tokens allowed "
                "(1048576).",
                "status": "INVALID_ARGUMENT",
            }
        },
        L(1048576, 1200293),
        "google-gemini/gemini-cli#6678",
    ),
    Wording(
        "LiteLLM (wrapped)",
        400,
        nested(
            "litellm.BadRequestError: litellm.ContextWindowExceededError: ContextWindowExceededError: "
            "DeepseekException - This model's maximum context length is 65536 tokens. However, you "
            "requested 70000 tokens (61808 in the messages, 8192 in the completion). Please reduce the "
            "length of the messages or completion.",
            type=None,
            param=None,
            code="400",
        ),
        L(65536, 61808, 8192),
        "litellm 1.110.2 litellm/exceptions.py:609-633 (prefix); upstream wording as DeepSeek's",
    ),
]

NOT_CONTEXT = [
    (
        "OpenAI, unsupported parameter",
        400,
        nested(
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
            "'max_completion_tokens' instead.",
            type="invalid_request_error",
            param="max_tokens",
            code="unsupported_parameter",
        ),
        "griptape-ai/ComfyUI-Griptape#312",
    ),
    (
        "OpenAI, output cap",
        400,
        nested(
            "max_tokens is too large: 6000. This model supports at most 4096 completion tokens, whereas "
            "you provided 6000.",
            type="invalid_request_error",
        ),
        "davila7/code-gpt-docs#284",
    ),
    (
        "DeepSeek, unknown model",
        400,
        nested("Model Not Exist", type="invalid_request_error", param=None, code="invalid_request_error"),
        "deepwn/addi#13",
    ),
    (
        "vLLM, truncation option",
        400,
        flat(
            "truncate_prompt_tokens value is greater than max_model_len. "
            "Please, select a smaller truncation size."
        ),
        "vllm entrypoints/openai/serving_engine.py",
    ),
    (
        "Groq, output cap naming `context_window`",
        400,
        nested(
            "`max_completion_tokens` must be less than or equal to `16384`, the maximum value for "
            "`max_completion_tokens` is less than the `context_window` for this model",
            type="invalid_request_error",
            param="max_completion_tokens",
        ),
        "Alishahryar1/free-claude-code#1354",
    ),
    (
        "Mistral, batch limit",
        400,
        {
            "object": "error",
            "message": "Too many tokens in batch. Max is 16384 got 17555",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        },
        "vllm-project/semantic-router#297",
    ),
    (
        "llama.cpp, two trailing assistant messages",
        400,
        nested(
            "Cannot have 2 or more assistant messages at the end of the list.", type="invalid_request_error"
        ),
        "llama.cpp tools/server/server-common.cpp; seen on a real server (tests/conformance)",
    ),
    (
        "llama.cpp, bad parameter",
        400,
        nested(
            "Field 'max_tokens': Value must be between -1 <= value <= 2147483647, but got -5",
            code=400,
            type="invalid_request_error",
        ),
        "seen on a real llama-server (tests/conformance)",
    ),
    (
        "Gemini, unknown field",
        400,
        [
            {
                "error": {
                    "code": 400,
                    "message": 'Invalid JSON payload received. Unknown name "reasoning": Cannot find field.',
                    "status": "INVALID_ARGUMENT",
                }
            }
        ],
        "ComfyUI-NewBie-LLM-Formatter#3",
    ),
]


@pytest.mark.parametrize("case", CONTEXT_ERRORS, ids=[c.server for c in CONTEXT_ERRORS])
@pytest.mark.parametrize("as_bytes", [False, True], ids=["parsed", "raw"])
def test_context_errors_are_recognised_with_their_numbers(case: Wording, as_bytes: bool) -> None:
    body = json.dumps(case.body).encode() if as_bytes else case.body
    error = classify_error(case.status, body)
    assert isinstance(error, ContextWindowExceeded), f"{case.server} ({case.source}): {type(error).__name__}"
    assert error.limit == case.limit, case.source
    assert not error.retryable


@pytest.mark.parametrize(("server", "status", "body", "source"), NOT_CONTEXT, ids=[c[0] for c in NOT_CONTEXT])
def test_other_400s_stay_invalid_requests(server: str, status: int, body: Any, source: str) -> None:
    error = classify_error(status, json.dumps(body).encode())
    assert isinstance(error, ProviderRequestInvalid), f"{server} ({source}): {type(error).__name__}"
    assert not error.retryable


def test_at_least_eight_servers_and_gateways_are_covered() -> None:
    families = {c.server.split(" ")[0].split(",")[0] for c in CONTEXT_ERRORS}
    assert len(families) >= 8, families


def test_a_5xx_about_the_context_without_numbers_is_still_an_outage() -> None:
    # llama.cpp with context shift: "Context size has been exceeded." as a 500 mid-generation
    error = classify_error(500, nested("Context size has been exceeded.", type="server_error", code=500))
    assert error.retryable
