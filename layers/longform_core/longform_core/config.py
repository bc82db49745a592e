"""Settings read from the environment (set by template.yaml, or by the local runner)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .batch.request import DEFAULT_MAX_BYTES as DEFAULT_BATCH_MAX_BYTES
from .batch.request import DEFAULT_MAX_LINES as DEFAULT_BATCH_MAX_LINES
from .draft import DraftPolicy
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
    api_key_secret_arn: str | None = None
    deadline_margin_seconds: float = Field(default=30.0, ge=0)
    prefill_style: PrefillStyle = "auto"
    # a prefill style is probed before it is learned (style_probe.py; PREFILL_PROBE)
    prefill_probe: bool = True
    # the model's Jinja chat template for the raw-completion rung (CHAT_TEMPLATE; chat_template.py)
    chat_template: str | None = None
    # how long a learned prefill style (styles/{digest}.json) is trusted before it is learned again
    prefill_style_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=0)
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
        env = os.environ if env is None else env

        def opt_int(name: str) -> int | None:
            raw = env.get(name, "").strip()
            try:
                value = int(raw) if raw else 0
            except ValueError:
                raise ValueError(f"{name} must be an integer, got {raw!r}") from None
            return value if value > 0 else None

        def opt_float(name: str, default: float) -> float:
            raw = env.get(name, "").strip()
            try:
                return float(raw) if raw else default
            except ValueError:
                raise ValueError(f"{name} must be a number, got {raw!r}") from None

        def opt_bool(name: str, default: bool) -> bool:
            raw = env.get(name, "").strip().lower()
            if not raw:
                return default
            if raw in ("true", "1", "yes", "on"):
                return True
            if raw in ("false", "0", "no", "off"):
                return False
            raise ValueError(f"{name} must be true or false, got {raw!r}")

        bucket = env.get("JOBS_BUCKET", "").strip()
        if not bucket:
            raise RuntimeError("JOBS_BUCKET is not set")
        provider_base_url = env.get("PROVIDER_BASE_URL", "").strip() or DEEPINFRA_BASE_URL
        allow_insecure = opt_bool("ALLOW_INSECURE_PROVIDER_URL", False)
        problem = provider_url_problem(provider_base_url, allow_insecure=allow_insecure)
        if problem:
            raise ValueError(problem)  # one line, before pydantic would wrap it in its report
        default_max_cost = opt_float("DEFAULT_MAX_COST_USD", 0.0)
        allowed_models = dict.fromkeys(m.strip() for m in env.get("ALLOWED_MODELS", "").split(","))
        return cls(
            jobs_bucket=bucket,
            provider_base_url=provider_base_url,
            default_model=env.get("DEFAULT_MODEL", "").strip() or DEFAULT_MODEL,
            max_tokens_per_request=opt_int("MAX_TOKENS_PER_REQUEST") or DEFAULT_MAX_TOKENS_PER_REQUEST,
            context_length=opt_int("CONTEXT_LENGTH"),
            api_key_secret_arn=env.get("PROVIDER_API_KEY_SECRET_ARN", "").strip() or None,
            deadline_margin_seconds=opt_float("DEADLINE_MARGIN_SECONDS", 30.0),
            prefill_style=env.get("PREFILL_STYLE", "").strip() or "auto",
            prefill_style_ttl_seconds=opt_int("PREFILL_STYLE_TTL_SECONDS") or 7 * 24 * 3600,
            chat_template=env.get("CHAT_TEMPLATE", "") or None,
            prefill_probe=opt_bool("PREFILL_PROBE", True),
            repetition_min_chars=opt_int("REPETITION_MIN_CHARS") or 200,
            repetition_max_repeats=int(opt_float("REPETITION_MAX_REPEATS", 3)),
            max_reasoning_only_chunks=opt_int("MAX_REASONING_ONLY_CHUNKS") or 8,
            provider_stream=opt_bool("PROVIDER_STREAM", True),
            draft_checkpoints=opt_bool("DRAFT_CHECKPOINTS", True),
            draft_interval_seconds=opt_float("DRAFT_INTERVAL_SECONDS", 5.0),
            draft_min_tokens=int(opt_float("DRAFT_MIN_TOKENS", 2000)),
            state_machine_arn=env.get("STATE_MACHINE_ARN", "").strip() or None,
            event_bus_name=env.get("EVENT_BUS_NAME", "").strip() or None,
            api_max_body_bytes=opt_int("API_MAX_BODY_BYTES") or 1_048_576,
            output_inline_max_bytes=opt_int("OUTPUT_INLINE_MAX_BYTES") or 262_144,
            provider_max_attempts=opt_int("PROVIDER_MAX_ATTEMPTS") or 4,
            provider_retry_base_seconds=opt_float("PROVIDER_RETRY_BASE_SECONDS", 0.5),
            allow_insecure_provider_url=allow_insecure,
            default_max_cost_usd=default_max_cost if default_max_cost > 0 else None,
            allowed_models=tuple(m for m in allowed_models if m),
            owner_identity=env.get("OWNER_IDENTITY", "").strip() or "IAM",
            batch_state_machine_arn=env.get("BATCH_STATE_MACHINE_ARN", "").strip() or None,
            batch_max_lines=opt_int("BATCH_MAX_LINES") or DEFAULT_BATCH_MAX_LINES,
            batch_max_bytes=opt_int("BATCH_MAX_BYTES") or DEFAULT_BATCH_MAX_BYTES,
            batch_max_concurrency=opt_int("BATCH_MAX_CONCURRENCY") or 150,
        )
