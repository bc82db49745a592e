"""chat_template.py: a model's chat template rendered as Hugging Face's apply_chat_template renders a
continued final message; where the template comes from; and the ladder's raw-completion rung."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from longform_core.chat_template import (
    CHATML_TEMPLATE,
    SMOLLM2_TEMPLATE,
    ChatTemplate,
    TemplateError,
    family_template,
    render_continuation,
    resolve_template,
)
from longform_core.prefill import Rung, next_rung
from longform_core.raw_completion import completion_body

CHAT = [{"role": "user", "content": "Write a story."}]


def test_smollm2_renders_its_default_system_message_and_an_open_assistant_turn() -> None:
    rendered = render_continuation(ChatTemplate(SMOLLM2_TEMPLATE, "family:smollm2"), CHAT, "Once upon a ti")
    assert rendered.text == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nWrite a story.<|im_end|>\n<|im_start|>assistant\nOnce upon a ti"
    )
    assert rendered.trimmed == ""


def test_trailing_whitespace_is_kept_where_the_template_keeps_it() -> None:
    rendered = render_continuation(ChatTemplate(CHATML_TEMPLATE, "family:chatml"), CHAT, "Once upon a time, ")
    assert rendered.text.endswith("<|im_start|>assistant\nOnce upon a time, ")
    assert rendered.trimmed == ""


def test_a_template_that_trims_the_content_gives_back_the_whitespace_it_dropped() -> None:
    # as transformers: the text before the tag right-stripped, the whitespace left to the seam
    trimming = (
        "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] | trim }}"
        "{% if not loop.last %}[end]{% endif %}{% endfor %}"
    )
    rendered = render_continuation(ChatTemplate(trimming, "request"), CHAT, "Once upon a time,\n\n")
    assert rendered.text == "[user]Write a story.[end][assistant]Once upon a time,"
    assert rendered.trimmed == "\n\n"


def test_hugging_face_globals_and_filters_are_there() -> None:
    source = (
        "{% for m in messages %}{{ m | tojson }}{% if m['role'] == 'tool' %}"
        "{{ raise_exception('no tools') }}{% endif %}{% endfor %}"
    )
    rendered = render_continuation(
        ChatTemplate(source, "request"), [{"role": "user", "content": "é <b>"}], "Hi"
    )
    assert '"content": "é <b>"' in rendered.text  # not HTML-escaped, not ASCII-escaped
    with pytest.raises(TemplateError, match="no tools"):
        render_continuation(ChatTemplate(source, "request"), [{"role": "tool", "content": "x"}], "Hi")


def test_a_template_that_drops_the_final_message_or_does_not_compile_is_an_error() -> None:
    with pytest.raises(TemplateError):
        render_continuation(ChatTemplate("{{ messages[0]['content'] }}", "request"), CHAT, "Once")
    with pytest.raises(TemplateError, match="compile"):
        render_continuation(ChatTemplate("{% for %}", "request"), CHAT, "Once")


def test_the_sandbox_refuses_attribute_escapes() -> None:
    hostile = (
        "{{ messages.__class__.__mro__[1].__subclasses__() }}"
        "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    )
    with pytest.raises(TemplateError):
        render_continuation(ChatTemplate(hostile, "request"), CHAT, "Once")


@given(st.text(min_size=1, max_size=200).filter(lambda s: s.strip()))
def test_the_prompt_ends_with_the_answer_so_far_exactly(answer: str) -> None:
    rendered = render_continuation(ChatTemplate(CHATML_TEMPLATE, "family:chatml"), CHAT, answer)
    assert rendered.text.endswith("<|im_start|>assistant\n" + answer)


def test_where_the_template_comes_from() -> None:
    props = {"chat_template": "{{ x }}", "bos_token": "<s>", "eos_token": "</s>"}
    assert resolve_template(model="m", requested="R", deployment="D", server_props=props).origin == "request"
    assert resolve_template(model="m", deployment="D", server_props=props).origin == "deployment"
    server = resolve_template(model="smollm2", server_props=props)
    assert server is not None and (server.origin, server.bos_token) == ("server", "<s>")
    family = resolve_template(model="HuggingFaceTB/SmolLM2-135M-Instruct", server_props={"chat_template": ""})
    assert family is not None and family.origin == "family:smollm2"
    assert family_template("deepseek-ai/DeepSeek-V3") is None
    assert resolve_template(model="gpt-4o") is None


def test_the_ladder_tries_the_completion_rung_only_when_a_template_is_known() -> None:
    assert next_rung(Rung("prefix"), "ignored", ladder=True) == Rung("continue_message")
    assert next_rung(Rung("prefix"), "ignored", ladder=True, completion=True) == Rung("completion")
    assert next_rung(Rung("prefix", trim=True), "ignored", ladder=True, completion=True) == Rung("completion")
    assert next_rung(Rung("completion"), "refused", ladder=True) == Rung("continue_message")
    assert next_rung(Rung("completion"), "trailing_whitespace", ladder=False) is None


def test_a_completion_body_keeps_sampling_and_drops_chat_fields() -> None:
    chat = {
        "model": "m",
        "messages": CHAT,
        "max_tokens": 32,
        "temperature": 0,
        "stop": ["x"],
        "continue_final_message": True,
        "add_generation_prompt": False,
        "reasoning_effort": "low",
    }
    assert completion_body(chat, "PROMPT") == {
        "model": "m",
        "max_tokens": 32,
        "temperature": 0,
        "stop": ["x"],
        "prompt": "PROMPT",
    }
