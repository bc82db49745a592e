"""A model's chat template, rendered client-side for the raw-completion rung (pure, no I/O).

Where no chat prefill is continued (the server opens a new turn, or refuses), the conversation and
the answer so far can be rendered into the model's own prompt text here and continued as a plain
completion (``/v1/completions``, ``raw_completion.py``): no prefill to ignore, no echo, no preamble.

Rendering follows Hugging Face's ``apply_chat_template`` (transformers ``utils/chat_template_utils``:
``_cached_compile_jinja_template`` and ``render_jinja_template``): a sandboxed immutable Jinja
environment with ``trim_blocks`` and ``lstrip_blocks``, the ``loopcontrols`` extension, a ``tojson``
filter that does not escape HTML, ``raise_exception`` and ``strftime_now``; and, for
``continue_final_message``, a tag appended to the final message, the text rendered, and everything
from the tag on cut (when the template trimmed the spacing before the tag, the result is
right-stripped: the whitespace the model is then not shown is returned, for the seam to restore).

Where a template comes from (:func:`resolve_template`): the request's ``chat_template``, the
deployment's (``CHAT_TEMPLATE``), the server's own (llama.cpp's ``GET /props``), or a well-known family
recognised by the model's name (:data:`KNOWN_FAMILIES`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "

# SmolLM2-Instruct's template, as its GGUF (tokenizer.chat_template) and tokenizer_config.json ship it
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, "
    "trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# plain ChatML, no default system message
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# (pattern on the model name, lower case; family; template): first match wins
KNOWN_FAMILIES: tuple[tuple[str, str, str], ...] = (
    (r"smollm2|smollm-2", "smollm2", SMOLLM2_TEMPLATE),
    (r"chatml", "chatml", CHATML_TEMPLATE),
)


class TemplateError(ValueError):
    """The template does not compile, raised an exception, or cut the final message."""


@dataclass(frozen=True)
class ChatTemplate:
    """A Jinja chat template, where it came from, and the special tokens it may refer to."""

    source: str
    origin: str  # "request", "deployment", "server", "family:<name>"
    bos_token: str = ""
    eos_token: str = ""


@dataclass(frozen=True)
class RenderedPrompt:
    """The prompt text to continue and the answer's trailing whitespace it does not hold."""

    text: str
    trimmed: str = ""


def family_template(model: str) -> ChatTemplate | None:
    """The template of a well-known family the model's name belongs to, if any."""
    name = model.lower()
    for pattern, family, source in KNOWN_FAMILIES:
        if re.search(pattern, name):
            return ChatTemplate(source, f"family:{family}")
    return None


def resolve_template(
    *,
    model: str,
    requested: str | None = None,
    deployment: str | None = None,
    server_props: Mapping[str, Any] | None = None,
) -> ChatTemplate | None:
    """The template to render with, first found: request, deployment, server, family (None: none)."""
    if requested:
        return ChatTemplate(requested, "request")
    if deployment:
        return ChatTemplate(deployment, "deployment")
    if server_props:
        source = server_props.get("chat_template")
        if isinstance(source, str) and source.strip():
            return ChatTemplate(
                source,
                "server",
                bos_token=str(server_props.get("bos_token") or ""),
                eos_token=str(server_props.get("eos_token") or ""),
            )
    return family_template(model)


def _tojson(
    x: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: Any = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _raise_exception(message: str) -> None:
    import jinja2

    raise jinja2.exceptions.TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)  # as transformers does: local time


@lru_cache(maxsize=16)
def _compile(source: str) -> Any:
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class _Generation(jinja2.ext.Extension):
        """``{% generation %}...{% endgeneration %}`` (transformers' assistant-mask tag): the body as is."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return str(caller())

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(source)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"the chat template does not compile: {exc}") from exc


def render_continuation(
    template: ChatTemplate, messages: Sequence[Mapping[str, Any]], answer_so_far: str
) -> RenderedPrompt:
    """The prompt that makes a plain completion continue ``answer_so_far`` as the assistant's reply.

    As ``apply_chat_template(messages + [assistant: answer_so_far], continue_final_message=True,
    add_generation_prompt=False, tokenize=False)``.
    """
    import jinja2

    compiled = _compile(template.source)
    chat = [dict(m) for m in messages]
    chat.append({"role": "assistant", "content": answer_so_far + CONTINUE_TAG})
    try:
        rendered = compiled.render(
            messages=chat,
            add_generation_prompt=False,
            bos_token=template.bos_token,
            eos_token=template.eos_token,
        )
    except jinja2.TemplateError as exc:
        raise TemplateError(f"the chat template failed: {exc}") from exc
    tag = CONTINUE_TAG.strip()
    if answer_so_far.strip() not in rendered or tag not in rendered:
        raise TemplateError("the chat template does not render the final message as it was given")
    at = rendered.rindex(tag)
    if rendered[at : at + len(CONTINUE_TAG)] == CONTINUE_TAG:
        return RenderedPrompt(rendered[:at])
    text = rendered[:at].rstrip()
    body = answer_so_far.rstrip()
    return RenderedPrompt(text, answer_so_far[len(body) :] if text.endswith(body) else "")
