"""The emulator's deterministic model: tokens, canonical outputs, prefill continuation."""

from __future__ import annotations

import random
import re

import pytest

from longform.emulator.continuation import Plan, overlap, plan_continuation
from longform.emulator.model import (
    TOKEN_RE,
    Canonical,
    GenerationSettings,
    canonical_output,
    count_tokens,
    full_content,
    prompt_tokens,
    reasoning_style,
    requested_lengths,
    tokenize,
    uncapped_answer,
    uncapped_content,
)

PROMPT = "Write a detailed history of lighthouses and the keepers who ran them."


def convo(text: str = PROMPT) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You are a careful writer."}, {"role": "user", "content": text}]


def joined(plan: Plan) -> tuple[str, str]:
    return "".join(plan.reasoning), "".join(plan.content)


# --------------------------------------------------------------------------- tokens


@pytest.mark.parametrize(
    "text",
    ["", "hello", " hello world ", "a\n\n## Part 1:  x\t", "   ", "\n", "über café — ok", "x" * 300],
)
def test_tokenize_round_trips(text: str) -> None:
    pieces = tokenize(text)
    assert "".join(pieces) == text
    assert count_tokens(text) == len(pieces) == len(TOKEN_RE.findall(text))


def test_token_boundaries() -> None:
    assert tokenize("Hello, big world.\n\n# Title ") == ["Hello,", " big", " world.", "\n\n#", " Title", " "]
    assert count_tokens("one two  three") == 3


def test_prompt_tokens_formula() -> None:
    messages: list[dict[str, str | None]] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "one two three"},
        {"role": "assistant", "content": None},
    ]
    assert prompt_tokens(messages) == 3 + (4 + 2) + (4 + 3) + (4 + 0)
    assert prompt_tokens([]) == 3
    parts = [{"role": "user", "content": [{"type": "text", "text": "a b"}, {"type": "text", "text": " c"}]}]
    assert prompt_tokens(parts) == 3 + 4 + 3


# --------------------------------------------------------------------------- canonical output


def test_same_prompt_same_text_and_different_prompt_different_text() -> None:
    a = canonical_output(convo(), model="m", seed=None, answer_tokens=400)
    b = canonical_output([dict(m) for m in convo()], model="m", seed=None, answer_tokens=400)
    assert a == b
    assert a.answer == b.answer
    other = canonical_output(convo("Write about volcanoes."), model="m", seed=None, answer_tokens=400)
    assert other.answer != a.answer
    reseeded = canonical_output(convo(), model="m", seed=7, answer_tokens=400)
    assert reseeded.answer != a.answer
    assert canonical_output(convo(), model="m", seed=7, answer_tokens=400).answer == reseeded.answer


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 6, 7, 11, 19, 20, 37, 100, 999, 2500])
def test_answer_has_exactly_n_tokens(n: int) -> None:
    c = canonical_output(convo(), model="m", seed=None, answer_tokens=n, reasoning_tokens=n)
    assert count_tokens(c.answer) == n
    assert tokenize(c.answer) == list(c.answer_pieces)
    assert c.answer == c.answer.rstrip()
    assert c.reasoning == ""  # plain model: no reasoning
    r = canonical_output(convo(), model="m-reasoning", seed=None, answer_tokens=n, reasoning_tokens=n)
    assert r.answer == c.answer  # the answer does not depend on the reasoning style
    assert count_tokens(r.reasoning) == n
    assert tokenize(r.reasoning) == list(r.reasoning_pieces)
    assert r.reasoning == r.reasoning.rstrip()
    for piece in (*c.answer_pieces[1:], *r.reasoning_pieces[1:]):
        assert piece[0].isspace()  # every piece after the first starts a new token
    if n:
        assert not c.answer[0].isspace()
        assert c.answer.endswith(".")


def test_text_is_readable_markdown() -> None:
    c = canonical_output(convo(), model="m", seed=None, answer_tokens=1500)
    first_line = c.answer.split("\n", 1)[0]
    assert first_line.startswith("# ")
    assert "Lighthouses" in first_line
    assert "Keepers" in first_line
    assert re.search(r"\n\n## Part 1: \S+", c.answer)
    assert re.search(r"\n\n## Part 3: \S+", c.answer)
    assert "lighthouses" in c.answer.lower().split("\n", 1)[1]  # topic words are mixed in
    words = re.findall(r"[^\s#]+", c.answer)
    assert all(re.fullmatch(r"[A-Za-z'-]+[.,:]?|\d+:", w) for w in words), words[:50]
    sentences = [s for s in re.split(r"(?<=\.)\s+", c.answer) if s and not s.startswith("#")]
    assert len(sentences) > 50
    assert "\n\n\n" not in c.answer
    r = canonical_output(convo(), model="some-reasoning-model", seed=None, reasoning_tokens=200)
    assert r.reasoning.startswith("Okay, the user wants")
    assert "Let me" in r.reasoning or "I should" in r.reasoning or "Hmm," in r.reasoning


def test_lengths_from_directives_phrases_and_settings() -> None:
    settings = GenerationSettings(answer_tokens=321, reasoning_tokens=45)
    assert requested_lengths(convo("Tell me a story."), settings) == (321, 45)
    assert requested_lengths(convo("Write a 40,000-word novel."), settings) == (40000, 45)
    assert requested_lengths(convo("About 1200 words on owls"), settings) == (1200, 45)
    assert requested_lengths(convo("A 2000-token summary"), settings) == (2000, 45)
    text = "Write a 40,000-word novel [emulator answer_tokens=77] [emulator reasoning_tokens=5]"
    assert requested_lengths(convo(text), settings) == (77, 5)
    c = canonical_output(convo(text), model="x-reasoner", seed=None, settings=settings)
    assert count_tokens(c.answer) == 77
    assert count_tokens(c.reasoning) == 5
    assert count_tokens(canonical_output(convo("story"), model="m", seed=None).answer) == 2000  # default
    # the prefill never changes the length (nor anything else)
    with_prefill = [
        *convo("story [emulator answer_tokens=50]"),
        {"role": "assistant", "content": "9999 words"},
    ]
    assert count_tokens(uncapped_answer(with_prefill)) == 50


def test_trailing_assistant_message_is_ignored() -> None:
    base = convo()
    prefilled = [*base, {"role": "assistant", "content": "# Something else entirely"}]
    assert canonical_output(prefilled, model="m", seed=1) == canonical_output(base, model="m", seed=1)
    history = [*base, {"role": "assistant", "content": "earlier"}, {"role": "user", "content": "more"}]
    assert (
        canonical_output(history, model="m", seed=1).answer
        != canonical_output(base, model="m", seed=1).answer
    )


def test_reasoning_style_by_name_and_setting() -> None:
    assert reasoning_style("deepseek-ai/DeepSeek-R1-Thinking") == "inline"
    assert reasoning_style("some/reasoner-v2") == "field"
    assert reasoning_style("meta-llama/Llama-3.3-70B") == "none"
    assert reasoning_style("meta-llama/Llama-3.3-70B", "inline") == "inline"
    assert reasoning_style("x-think", "none") == "none"
    settings = GenerationSettings(reasoning="field", reasoning_tokens=20, answer_tokens=30)
    c = canonical_output(convo(), model="plain", seed=None, settings=settings)
    assert c.style == "field"
    assert count_tokens(c.reasoning) == 20
    assert full_content(c) == c.answer


def test_inline_full_content_and_uncapped_helpers() -> None:
    settings = GenerationSettings(answer_tokens=60, reasoning_tokens=25)
    c = canonical_output(convo(), model="qwen-thinking", seed=3, settings=settings)
    assert c.style == "inline"
    assert full_content(c) == "<think>\n" + c.reasoning + "\n</think>\n\n" + c.answer
    assert uncapped_answer(convo(), model="qwen-thinking", seed=3, settings=settings) == c.answer
    assert uncapped_content(convo(), model="qwen-thinking", seed=3, settings=settings) == full_content(c)
    empty = canonical_output(convo(), model="qwen-thinking", seed=3, reasoning_tokens=0, settings=settings)
    assert full_content(empty) == "<think>\n\n</think>\n\n" + empty.answer


def test_generation_is_cached() -> None:
    # no wall-time bound (a timed test fails on a loaded machine): the answer is built once per
    # conversation, and a continuation plan reuses it (bench/continuation_bench.py measures speed)
    messages = convo("A very long one [emulator answer_tokens=200000]")
    c = canonical_output(messages, model="m", seed=99)
    assert count_tokens(c.answer) == 200_000
    assert canonical_output(messages, model="m", seed=99) is c
    assert canonical_output(messages, model="m", seed=100) is not c
    prefill = c.answer[:500_000]
    plan = plan_continuation(c, prefill)
    assert prefill + "".join(plan.content) == c.answer


def test_canonical_built_by_hand_gets_pieces() -> None:
    c = Canonical(reasoning="Hmm. Yes.", answer="# T\n\nA b.", style="field")
    assert c.reasoning_pieces == ("Hmm.", " Yes.")
    assert c.answer_pieces == ("#", " T", "\n\nA", " b.")
    assert joined(plan_continuation(c, None)) == ("Hmm. Yes.", "# T\n\nA b.")


# --------------------------------------------------------------------------- continuation


def test_no_prefill_emits_everything() -> None:
    settings = GenerationSettings(answer_tokens=40, reasoning_tokens=10)
    for model, expect_reasoning in (("plain", False), ("r-reasoning", True), ("t-thinking", False)):
        c = canonical_output(convo(), model=model, seed=None, settings=settings)
        plan = plan_continuation(c, None)
        assert plan.mode == "fresh"
        assert "".join(plan.content) == full_content(c)
        assert "".join(plan.reasoning) == (c.reasoning if expect_reasoning else "")
        assert plan_continuation(c, "").content == plan.content


def _client_prefill(style: str, reasoning: str, content: str) -> str:
    """What a client sends back: the content so far, with the reasoning block for field style."""
    if style != "field" or not reasoning:
        return content
    if not content:
        return "<think>\n" + reasoning
    return "<think>\n" + reasoning + "\n</think>\n\n" + content


def _reassemble(
    c: Canonical, rng: random.Random, *, start: str = "", max_cut: int = 400
) -> tuple[str, str, int]:
    """Continue repeatedly, keeping a random number of characters (mid-token cuts included)."""
    reasoning, content, calls = "", start, 0
    while True:
        plan = plan_continuation(c, _client_prefill(c.style, reasoning, content) or None)
        r, t = joined(plan)
        if not r and not t:
            return reasoning, content, calls
        calls += 1
        keep = rng.randint(1, max_cut)
        reasoning += r[:keep]
        content += t[: max(0, keep - len(r))]
        assert calls < 10_000


@pytest.mark.parametrize("model", ["plain-model", "some-reasoning-model", "some-thinking-model"])
@pytest.mark.parametrize("seed", range(6))
def test_continuations_reassemble_byte_for_byte(model: str, seed: int) -> None:
    rng = random.Random(seed)
    settings = GenerationSettings(answer_tokens=rng.randint(1, 500), reasoning_tokens=rng.randint(0, 200))
    c = canonical_output(convo(), model=model, seed=seed, settings=settings)
    reasoning, content, calls = _reassemble(c, rng, max_cut=rng.choice([3, 40, 400]))
    assert content == full_content(c)
    assert reasoning == (c.reasoning if c.style == "field" else "")
    assert calls >= 1


@pytest.mark.parametrize("model", ["plain-model", "some-reasoning-model", "some-thinking-model"])
def test_every_cut_point_continues_exactly(model: str) -> None:
    settings = GenerationSettings(answer_tokens=25, reasoning_tokens=12)
    c = canonical_output(convo(), model=model, seed=1, settings=settings)
    if c.style == "field":
        for k in range(1, len(c.reasoning) + 1):  # cuts inside the reasoning
            plan = plan_continuation(c, "<think>\n" + c.reasoning[:k])
            assert plan.mode == "prefix"
            assert joined(plan) == (c.reasoning[k:], c.answer)
    full = full_content(c)
    for k in range(1, len(full) + 1):
        plan = plan_continuation(c, _client_prefill(c.style, c.reasoning, full[:k]))
        assert joined(plan) == ("", full[k:]), k
        if plan.content:
            assert "".join(tokenize("".join(plan.content))) == full[k:]


def test_field_prefill_parsing_variants() -> None:
    c = canonical_output(convo(), model="x-reasoning", seed=2, answer_tokens=30, reasoning_tokens=15)
    r, a = c.reasoning, c.answer
    assert joined(plan_continuation(c, "<think>")) == (r, a)
    assert joined(plan_continuation(c, "<think>\n")) == (r, a)
    assert joined(plan_continuation(c, "<think>" + r[:10])) == (r[10:], a)
    assert joined(plan_continuation(c, f"<think>\n{r}\n</think>")) == ("", a)
    assert joined(plan_continuation(c, f"<think>\n{r}\n</think>\n\n")) == ("", a)
    assert joined(plan_continuation(c, f"<think>\n{r}</think>\n\n{a[:7]}")) == ("", a[7:])
    # the answer so far without any reasoning block: reasoning counts as done
    assert joined(plan_continuation(c, a[:12])) == ("", a[12:])


def test_none_style_ignores_think_blocks() -> None:
    c = canonical_output(convo(), model="plain", seed=2, answer_tokens=30)
    assert joined(plan_continuation(c, "<think>\n")) == ("", c.answer)
    assert joined(plan_continuation(c, "<think>\nhmm\n</think>\n\n" + c.answer[:9])) == ("", c.answer[9:])


@pytest.mark.parametrize("model", ["plain-model", "some-reasoning-model", "some-thinking-model"])
def test_non_prefix_prefill_then_consistent_continuations(model: str) -> None:
    settings = GenerationSettings(answer_tokens=120, reasoning_tokens=30)
    c = canonical_output(convo(), model=model, seed=5, settings=settings)
    target = full_content(c) if c.style == "inline" else c.answer
    plan = plan_continuation(c, "Dear team,")
    assert plan.mode == "appended"
    assert joined(plan) == ("", target)  # the canonical output follows the user's start
    for k in (1, 5, 63, 64, 65, 200, len(target) - 1):
        plan = plan_continuation(c, "Dear team," + target[:k])
        assert joined(plan) == ("", target[k:]), k
        assert plan.mode == "realigned"
    for seed in range(4):
        _, content, _ = _reassemble(c, random.Random(seed), start="Dear team,", max_cut=50)
        assert content == "Dear team," + target


def test_deepinfra_style_empty_think_prefill() -> None:
    c = canonical_output(convo(), model="x-reasoning", seed=5, answer_tokens=50, reasoning_tokens=30)
    assert joined(plan_continuation(c, "<think>\n\n</think>\n\n")) == ("", c.answer)
    assert joined(plan_continuation(c, "<think>\n\n</think>\n\nHello")) == ("", c.answer)
    assert joined(plan_continuation(c, "<think>\n\n</think>\n\nHello" + c.answer[:20])) == ("", c.answer[20:])
    # open reasoning that does not match: the whole reasoning, then the answer
    assert joined(plan_continuation(c, "<think>\nLet me see.")) == (c.reasoning, c.answer)
    assert joined(plan_continuation(c, "<think>\nLet me see." + c.reasoning[:9])) == (
        c.reasoning[9:],
        c.answer,
    )


def test_overlap() -> None:
    assert overlap("", "abc") == 0
    assert overlap("xxab", "abc") == 2
    assert overlap("abc", "abcdef") == 3
    assert overlap("zzz", "abc") == 0
    long_target = "#" + "y" * 200
    assert overlap("Dear " + long_target[:150], long_target) == 150
    assert overlap("# and #" + long_target[:100], long_target) == 100
