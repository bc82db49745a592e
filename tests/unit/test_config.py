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
    assert s.prefill_style == "auto"
    assert s.prefill_style_ttl_seconds == 7 * 24 * 3600
    assert (s.repetition_min_chars, s.repetition_max_repeats) == (200, 3)
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
    assert s.prefill_style == "auto"


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


# ---- security and limits ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://api.deepinfra.com/v1/openai",
        "HTTPS://gateway.example.com:8443/v1",
        "http://127.0.0.1:8080/v1",
        "http://127.0.0.2:8080/v1",  # all of 127.0.0.0/8 is loopback
        "http://localhost:11434/v1",
        "http://LOCALHOST/v1",
        "http://[::1]:8080/v1",
    ],
)
def test_https_or_loopback_provider_urls_are_accepted(url: str) -> None:
    assert Settings.from_env({"JOBS_BUCKET": "b", "PROVIDER_BASE_URL": url}).provider_base_url == url
    assert Settings(jobs_bucket="b", provider_base_url=url).provider_base_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5:8000/v1",
        "http://api.deepinfra.com/v1/openai",
        "http://127.0.0.1.nip.io/v1",  # a name that only starts like loopback
        "http://localhost.example.com/v1",
        "http://localhost@evil.example.com/v1",  # the host is after the @
        "ftp://example.com/v1",
        "https://",
        "https:///v1",
        "api.example.com/v1",
        "http://[::1/v1",
    ],
)
def test_other_provider_urls_are_refused_in_one_line_naming_the_parameter(url: str) -> None:
    with pytest.raises(ValueError, match="ProviderBaseUrl") as info:
        Settings.from_env({"JOBS_BUCKET": "b", "PROVIDER_BASE_URL": url})
    assert type(info.value) is ValueError  # not pydantic's multi-line report
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("ProviderBaseUrl (PROVIDER_BASE_URL) must be an https:// URL")
    assert "AllowInsecureProviderUrl=true" in message
    assert repr(url) in message
    # built directly, the same rule holds
    with pytest.raises(pydantic.ValidationError, match="ProviderBaseUrl"):
        Settings(jobs_bucket="b", provider_base_url=url)


def test_allow_insecure_provider_url_lets_plain_http_through() -> None:
    env = {"JOBS_BUCKET": "b", "PROVIDER_BASE_URL": "http://10.0.0.5:8000/v1"}
    s = Settings.from_env({**env, "ALLOW_INSECURE_PROVIDER_URL": "true"})
    assert s.provider_base_url == "http://10.0.0.5:8000/v1"
    assert s.allow_insecure_provider_url is True
    with pytest.raises(ValueError, match=r"^ProviderBaseUrl"):
        Settings.from_env({**env, "ALLOW_INSECURE_PROVIDER_URL": "false"})
    # it opens plain http, nothing else
    with pytest.raises(ValueError, match=r"^ProviderBaseUrl"):
        Settings.from_env(
            {"JOBS_BUCKET": "b", "PROVIDER_BASE_URL": "ftp://x/v1", "ALLOW_INSECURE_PROVIDER_URL": "true"}
        )


def test_limits_default_to_none() -> None:
    s = Settings.from_env({"JOBS_BUCKET": "b"})
    assert s.allow_insecure_provider_url is False
    assert s.default_max_cost_usd is None
    assert s.allowed_models == ()
    assert s.owner_identity == "IAM"


def test_limits_from_the_environment() -> None:
    s = Settings.from_env(
        {
            "JOBS_BUCKET": "b",
            "DEFAULT_MAX_COST_USD": "2.5",
            "ALLOWED_MODELS": " a/one, b/two ,,a/one,",
            "OWNER_IDENTITY": "API_KEY",
        }
    )
    assert s.default_max_cost_usd == 2.5
    assert s.allowed_models == ("a/one", "b/two")
    assert s.owner_identity == "API_KEY"
    # CloudFormation's "not set"
    unset = Settings.from_env({"JOBS_BUCKET": "b", "DEFAULT_MAX_COST_USD": "0", "ALLOWED_MODELS": ""})
    assert (unset.default_max_cost_usd, unset.allowed_models) == (None, ())


def test_bad_limits_name_the_variable() -> None:
    with pytest.raises(ValueError, match="DEFAULT_MAX_COST_USD"):
        Settings.from_env({"JOBS_BUCKET": "b", "DEFAULT_MAX_COST_USD": "a dollar"})
    with pytest.raises(pydantic.ValidationError, match="default_max_cost_usd"):
        Settings.from_env({"JOBS_BUCKET": "b", "DEFAULT_MAX_COST_USD": "1e9"})
    with pytest.raises(pydantic.ValidationError, match="owner_identity"):
        Settings.from_env({"JOBS_BUCKET": "b", "OWNER_IDENTITY": "NONE"})
