"""Settings from the environment."""

from __future__ import annotations

import pydantic
import pytest
from longform_core.config import DEEPINFRA_BASE_URL, DEFAULT_MODEL, Settings
from longform_core.request import DEFAULT_MAX_TOKENS_PER_REQUEST


def test_defaults() -> None:
    s = Settings.from_env({"JOBS_BUCKET": "my-jobs"})
    assert s.jobs_bucket == "my-jobs"
    assert s.provider_base_url == DEEPINFRA_BASE_URL == "https://api.deepinfra.com/v1/openai"
    assert s.default_model == DEFAULT_MODEL
    assert s.max_tokens_per_request == DEFAULT_MAX_TOKENS_PER_REQUEST == 16_384
    assert s.context_length is None
    assert s.api_key_secret_arn is None
    assert s.deadline_margin_seconds == 30.0
    assert s.prefill_style == "assistant"
    assert s.max_reasoning_only_chunks == 8


def test_overrides() -> None:
    s = Settings.from_env(
        {
            "JOBS_BUCKET": " jobs-bucket ",
            "PROVIDER_BASE_URL": "http://127.0.0.1:8765/v1",
            "DEFAULT_MODEL": "emu/model",
            "MAX_TOKENS_PER_REQUEST": "4096",
            "CONTEXT_LENGTH": "32768",
            "PROVIDER_API_KEY_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:key",
            "DEADLINE_MARGIN_SECONDS": "12.5",
            "PREFILL_STYLE": "vllm",
            "MAX_REASONING_ONLY_CHUNKS": "3",
        }
    )
    assert s.jobs_bucket == "jobs-bucket"
    assert s.provider_base_url == "http://127.0.0.1:8765/v1"
    assert s.default_model == "emu/model"
    assert s.max_tokens_per_request == 4096
    assert s.context_length == 32768
    assert s.api_key_secret_arn == "arn:aws:secretsmanager:us-east-1:123456789012:secret:key"
    assert s.deadline_margin_seconds == 12.5
    assert s.prefill_style == "vllm"
    assert s.max_reasoning_only_chunks == 3


def test_empty_and_zero_values_mean_default() -> None:
    """CloudFormation parameters are strings; 0 / "" stand for "not set"."""
    s = Settings.from_env(
        {
            "JOBS_BUCKET": "b",
            "PROVIDER_BASE_URL": "",
            "DEFAULT_MODEL": "  ",
            "MAX_TOKENS_PER_REQUEST": "0",
            "CONTEXT_LENGTH": "0",
            "PROVIDER_API_KEY_SECRET_ARN": "",
            "DEADLINE_MARGIN_SECONDS": "",
            "PREFILL_STYLE": "",
        }
    )
    assert s.provider_base_url == DEEPINFRA_BASE_URL
    assert s.default_model == DEFAULT_MODEL
    assert s.max_tokens_per_request == 16_384
    assert s.context_length is None
    assert s.api_key_secret_arn is None
    assert s.deadline_margin_seconds == 30.0
    assert s.prefill_style == "assistant"


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBS_BUCKET", "from-environ")
    monkeypatch.setenv("PREFILL_STYLE", "prefix")
    s = Settings.from_env()
    assert (s.jobs_bucket, s.prefill_style) == ("from-environ", "prefix")


@pytest.mark.parametrize("env", [{}, {"JOBS_BUCKET": ""}, {"JOBS_BUCKET": "   "}, {"DEFAULT_MODEL": "m"}])
def test_missing_bucket_fails_clearly(env: dict[str, str]) -> None:
    with pytest.raises(RuntimeError, match="JOBS_BUCKET"):
        Settings.from_env(env)


def test_missing_bucket_in_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBS_BUCKET", raising=False)
    with pytest.raises(RuntimeError, match="JOBS_BUCKET"):
        Settings.from_env()


def test_unknown_prefill_style_rejected() -> None:
    with pytest.raises(pydantic.ValidationError, match="prefill_style"):
        Settings.from_env({"JOBS_BUCKET": "b", "PREFILL_STYLE": "magic"})


@pytest.mark.parametrize(
    ("name", "value"),
    [("MAX_TOKENS_PER_REQUEST", "lots"), ("CONTEXT_LENGTH", "64k"), ("DEADLINE_MARGIN_SECONDS", "soon")],
)
def test_bad_numbers_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({"JOBS_BUCKET": "b", name: value})


def test_negative_margin_rejected() -> None:
    with pytest.raises(pydantic.ValidationError):
        Settings.from_env({"JOBS_BUCKET": "b", "DEADLINE_MARGIN_SECONDS": "-1"})


def test_settings_are_frozen() -> None:
    s = Settings(jobs_bucket="b")
    with pytest.raises(pydantic.ValidationError):
        s.jobs_bucket = "other"  # type: ignore[misc]
