"""Settings read from the environment (set by template.yaml, or by the local runner)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .batch.request import DEFAULT_MAX_BYTES as DEFAULT_BATCH_MAX_BYTES
from .batch.request import DEFAULT_MAX_LINES as DEFAULT_BATCH_MAX_LINES
from .draft import DraftPolicy
from .env_settings import Env, env_values
from .request import DEFAULT_MAX_TOKENS_PER_REQUEST, PrefillStyle

OwnerIdentity = Literal["IAM", "API_KEY"]

DEEPINFRA_BASE_URL = "https://api.deepinfra.com/v1/openai"
DEFAULT_MODEL = "deepseek-ai/DeepSeek-V3.2"


def provider_url_problem(url: str, *, allow_insecure: bool) -> str | None:
    """Why ``url`` may not be the provider's base URL (one line naming the parameter), or None.

    https:// only: the prompt, the text and the API key travel on it. Plain http:// only to a
    loopback host (a server on the same machine: 127.0.0.0/8, ::1, localhost) or when the
    deployment says so explicitly (``AllowInsecureProviderUrl=true``).
    """
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname
    except ValueError:  # e.g. an invalid port or IPv6 literal
        scheme, host = "", None
    if host and scheme == "https":
        return None
    if host and scheme == "http" and (allow_insecure or _is_loopback(host)):
        return None
    return (
        f"ProviderBaseUrl (PROVIDER_BASE_URL) must be an https:// URL; http:// only for 127.0.0.1 or "
        f"localhost, or with AllowInsecureProviderUrl=true (ALLOW_INSECURE_PROVIDER_URL); got {url!r}"
    )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseModel):
    """Deployment-wide defaults; a request may override the model, cap and context length."""

    model_config = ConfigDict(frozen=True)

    jobs_bucket: str
    provider_base_url: str = DEEPINFRA_BASE_URL
    default_model: str = DEFAULT_MODEL
    max_tokens_per_request: int = Field(default=DEFAULT_MAX_TOKENS_PER_REQUEST, ge=1)
    context_length: int | None = Field(default=None, ge=1)
    api_key_secret_arn: Annotated[str | None, Env("PROVIDER_API_KEY_SECRET_ARN")] = None
    deadline_margin_seconds: float = Field(default=30.0, ge=0)
    prefill_style: PrefillStyle = "auto"
    # a prefill style is probed before it is learned (style_probe.py; PREFILL_PROBE)
    prefill_probe: bool = True
    # the model's Jinja chat template for the raw-completion rung (CHAT_TEMPLATE; chat_template.py)
    chat_template: Annotated[str | None, Env(verbatim=True)] = None
    # how long a learned prefill style (styles/{digest}.json) is trusted before it is learned again
    prefill_style_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    # a model stuck repeating one passage: the last `repetition_min_chars` characters of the answer
    # found `repetition_max_repeats` times in it end the job `repetition` (0 repeats: never)
    repetition_min_chars: int = Field(default=200, ge=20)
    repetition_max_repeats: int = Field(default=3, ge=0)
    # consecutive chunks with reasoning but no answer text before the job is stopped
    max_reasoning_only_chunks: int = Field(default=8, ge=1)
    request_timeout_connect: float = 10.0
    # stream the provider's replies; off for gateways that buffer SSE (a request may override)
    provider_stream: bool = True
    # draft checkpoints of the chunk in flight (draft.py): due when both the interval has passed
    # and this many tokens arrived since the last one (DraftIntervalSeconds, DraftMinTokens)
    draft_checkpoints: bool = True
    draft_interval_seconds: float = Field(default=5.0, ge=0)
    draft_min_tokens: int = Field(default=2000, ge=0)
    # entry points (API, S3 drop folder)
    state_machine_arn: str | None = None
    event_bus_name: str | None = None  # None: no completion events
    api_max_body_bytes: int = Field(default=1_048_576, ge=1)
    output_inline_max_bytes: int = Field(default=262_144, ge=1)
    # in-process retries of 429/5xx before the error goes to the state machine's Retry
    provider_max_attempts: int = Field(default=4, ge=1)
    provider_retry_base_seconds: float = Field(default=0.5, ge=0)
    # security and limits (the template parameters named in the comments)
    allow_insecure_provider_url: bool = False  # AllowInsecureProviderUrl: http:// beyond loopback
    # DefaultMaxCostUsd (None: no cap); bounded as a request's own max_cost_usd is (request.py)
    default_max_cost_usd: float | None = Field(default=None, gt=0, le=100_000)
    allowed_models: tuple[str, ...] = ()  # AllowedModels (empty: any; the default model always)
    # ApiAuth: what identifies the caller that owns a job submitted through the API (api/routes.py)
    owner_identity: OwnerIdentity = "IAM"
    # batches (batch/): the workflow, the largest batch accepted, and BatchMaxConcurrency, the
    # most lines (each one job: at most one provider request at a time) a batch runs at once
    batch_state_machine_arn: str | None = None
    batch_max_lines: int = Field(default=DEFAULT_BATCH_MAX_LINES, ge=1)
    batch_max_bytes: int = Field(default=DEFAULT_BATCH_MAX_BYTES, ge=1)
    batch_max_concurrency: int = Field(default=150, ge=1, le=10_000)

    @property
    def draft_policy(self) -> DraftPolicy:
        return DraftPolicy(
            interval_seconds=self.draft_interval_seconds,
            min_tokens=self.draft_min_tokens,
            enabled=self.draft_checkpoints,
        )

    @model_validator(mode="after")
    def _provider_url_is_https(self) -> Settings:
        allow = self.allow_insecure_provider_url
        problem = provider_url_problem(self.provider_base_url, allow_insecure=allow)
        if problem:
            raise ValueError(problem)
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings the environment names (``env_values``: every field from its variable, the
        model's own default when the variable is unset, blank or CloudFormation's "not set" 0)."""
        values = env_values(cls, os.environ if env is None else env)
        url = values.get("provider_base_url", DEEPINFRA_BASE_URL)
        problem = provider_url_problem(url, allow_insecure=values.get("allow_insecure_provider_url", False))
        if problem:
            raise ValueError(problem)  # one line, before pydantic would wrap it in its report
        return cls(**values)
