"""``Settings.from_env`` walks the model's fields (``env_settings.py``): every field from its own
variable, its default stated once, on the field."""

from __future__ import annotations

import typing
from typing import Any

import pydantic
import pytest
from longform_core.config import Settings
from longform_core.env_settings import Env, env_name, env_values

BASE = {"JOBS_BUCKET": "b"}
DEFAULTS = Settings(jobs_bucket="b")


def _other_value(name: str) -> tuple[str, Any]:
    """A value other than the default, as the environment spells it and as the field holds it."""
    field, default = Settings.model_fields[name], getattr(DEFAULTS, name)
    args = typing.get_args(field.annotation)
    if name == "provider_base_url":
        return "https://gateway.example.com/v1", "https://gateway.example.com/v1"
    if isinstance(default, bool):
        return str(not default).lower(), not default
    if field.annotation is int or int in args:
        value = (default or 30) + 1
        return str(value), value
    if field.annotation is float or float in args:
        value = (default or 1.0) + 0.5
        return str(value), value
    if isinstance(default, tuple):
        return " a/one, b/two ,a/one", ("a/one", "b/two")
    if typing.get_origin(field.annotation) is typing.Literal:
        other = next(a for a in args if a != default)
        return other, other
    return "some-value", "some-value"


SETTABLE = [name for name in Settings.model_fields if name != "jobs_bucket"]


@pytest.mark.parametrize("name", SETTABLE)
def test_every_field_is_read_from_its_variable(name: str) -> None:
    variable = env_name(name, Settings.model_fields[name])
    raw, expected = _other_value(name)
    assert getattr(Settings.from_env({**BASE, variable: raw}), name) == expected
    assert getattr(DEFAULTS, name) != expected


@pytest.mark.parametrize("name", SETTABLE)
def test_an_unset_or_blank_variable_keeps_the_fields_one_default(name: str) -> None:
    variable = env_name(name, Settings.model_fields[name])
    default = Settings.model_fields[name].get_default()
    assert getattr(Settings.from_env(BASE), name) == default
    assert getattr(Settings.from_env({**BASE, variable: "  "}), name) == default


def test_variable_names_are_the_field_names_in_capitals_unless_named() -> None:
    names = {n: env_name(n, f) for n, f in Settings.model_fields.items()}
    renamed = {n: v for n, v in names.items() if v != n.upper()}
    assert renamed == {"api_key_secret_arn": "PROVIDER_API_KEY_SECRET_ARN"}


_TEXT = {
    "PROVIDER_BASE_URL",
    "DEFAULT_MODEL",
    "PREFILL_STYLE",
    "CHAT_TEMPLATE",
    "STATE_MACHINE_ARN",
    "EVENT_BUS_NAME",
    "PROVIDER_API_KEY_SECRET_ARN",
    "ALLOWED_MODELS",
    "OWNER_IDENTITY",
    "BATCH_STATE_MACHINE_ARN",
}


def test_zero_is_not_set_only_where_the_field_refuses_zero() -> None:
    numbers = {env_name(n, f) for n, f in Settings.model_fields.items()} - _TEXT - {"JOBS_BUCKET"}
    s = Settings.from_env({**BASE, **dict.fromkeys(numbers, "0")})
    assert s.max_tokens_per_request == DEFAULTS.max_tokens_per_request  # ge=1: 0 is "not set"
    assert s.context_length is None and s.default_max_cost_usd is None
    assert s.prefill_style_ttl_seconds == DEFAULTS.prefill_style_ttl_seconds
    assert s.repetition_max_repeats == 0  # ge=0: 0 is a value ("never")
    assert s.draft_min_tokens == 0 and s.deadline_margin_seconds == 0.0
    assert s.draft_checkpoints is False  # a bool's 0 is false


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MAX_TOKENS_PER_REQUEST", "3.5", "must be an integer"),
        ("BATCH_MAX_LINES", "many", "must be an integer"),
        ("DRAFT_INTERVAL_SECONDS", "often", "must be a number"),
        ("PROVIDER_STREAM", "maybe", "must be true or false"),
    ],
)
def test_a_bad_value_names_its_variable_in_one_line(variable: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{variable} {message}, got '{value}'$"):
        Settings.from_env({**BASE, variable: value})


def test_a_negative_value_where_zero_is_admitted_is_refused_by_the_model() -> None:
    with pytest.raises(pydantic.ValidationError, match="repetition_max_repeats"):
        Settings.from_env({**BASE, "REPETITION_MAX_REPEATS": "-1"})


def test_a_chat_template_is_kept_verbatim_and_others_are_stripped() -> None:
    template = "{% for m in messages %}{{ m.content }}\n{% endfor %}\n"
    s = Settings.from_env({**BASE, "CHAT_TEMPLATE": template, "DEFAULT_MODEL": " m \n"})
    assert (s.chat_template, s.default_model) == (template, "m")


def test_the_loader_works_on_any_model() -> None:
    class Small(pydantic.BaseModel):
        name: str
        size: int = pydantic.Field(default=4, ge=1)
        tags: tuple[str, ...] = ()
        secret: typing.Annotated[str | None, Env("MY_SECRET")] = None

    values = env_values(Small, {"NAME": " x ", "SIZE": "0", "TAGS": "a,,b,a", "MY_SECRET": "s"})
    assert values == {"name": "x", "tags": ("a", "b"), "secret": "s"}
    with pytest.raises(RuntimeError, match=r"^NAME is not set$"):
        env_values(Small, {})
