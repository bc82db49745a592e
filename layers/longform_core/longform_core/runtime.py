"""The composition root: clients created once per Lambda container (cold start), reused after."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from .batch.store import BatchStore
from .config import Settings
from .executions import StepFunctionsExecutions
from .job_store import JobStore
from .notify import BatchFinishedPublisher, CompletionPublisher
from .services import Services

if TYPE_CHECKING:
    from .provider import ProgressCallback, ProviderClient, StreamOutcome

_lock = threading.Lock()
_services: Services | None = None

SECRET_MAX_AGE_SECONDS = 300


def read_api_key(secret_arn: str | None) -> str | None:
    """The provider API key from Secrets Manager (cached by Powertools for 5 minutes).

    The secret may be the plain key or JSON with an ``api_key`` field. Never logged.
    """
    if not secret_arn:
        return None
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(secret_arn, max_age=SECRET_MAX_AGE_SECONDS)
    if isinstance(value, bytes):
        value = value.decode()
    text = str(value).strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return text
        for field in ("api_key", "apiKey", "DEEPINFRA_API_KEY", "key"):
            if isinstance(data.get(field), str):
                return str(data[field])
    return text


def build_provider(settings: Settings, clock: Callable[[], float] = time.monotonic) -> ProviderClient:
    """The provider client; ``clock`` is what its deadlines are read on (the services' clock)."""
    import httpx

    from .provider import ProviderClient
    from .retry import RetryPolicy

    http = httpx.Client(limits=httpx.Limits(max_connections=4, max_keepalive_connections=2))
    return ProviderClient(
        http,
        base_url=settings.provider_base_url,
        api_key=lambda: read_api_key(settings.api_key_secret_arn),
        retry=RetryPolicy(
            max_attempts=settings.provider_max_attempts, base_delay=settings.provider_retry_base_seconds
        ),
        connect_timeout=settings.request_timeout_connect,
        clock=clock,
    )


class LazyProvider:
    """The provider client, built on first use: only the chunk function talks to the model, so the
    others never import httpx (tens of milliseconds of every cold start)."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._client: ProviderClient | None = None

    def chat(
        self,
        body: dict[str, Any],
        *,
        deadline: float,
        stream: bool = True,
        on_progress: ProgressCallback | None = None,
    ) -> StreamOutcome:
        return self._built().chat(body, deadline=deadline, stream=stream, on_progress=on_progress)

    def server_props(self) -> dict[str, Any] | None:
        """``ProviderClient.server_props``: the raw-completion rung's template."""
        return self._built().server_props()

    def _built(self) -> ProviderClient:
        if self._client is None:
            self._client = build_provider(self._settings)
        return self._client


def build_services(settings: Settings | None = None) -> Services:
    settings = settings or Settings.from_env()
    # SigV4 for every S3 call, presigned URLs included: botocore's default for presigning in
    # us-east-1 is still SigV2, which S3 refuses for objects encrypted with KMS (the jobs bucket's)
    s3 = boto3.client("s3", config=Config(signature_version="s3v4"))
    publisher = None
    batch_publisher = None
    if settings.event_bus_name:
        events = boto3.client("events")
        publisher = CompletionPublisher(events, bus_name=settings.event_bus_name, bucket=settings.jobs_bucket)
        batch_publisher = BatchFinishedPublisher(events, bus_name=settings.event_bus_name)
    workflows = settings.state_machine_arn or settings.batch_state_machine_arn
    sfn = boto3.client("stepfunctions") if workflows else None
    return Services(
        settings=settings,
        store=JobStore(s3, settings.jobs_bucket),
        batches=BatchStore(s3, settings.jobs_bucket),
        provider=LazyProvider(settings),
        publisher=publisher,
        executions=(
            StepFunctionsExecutions(sfn, settings.state_machine_arn)
            if sfn is not None and settings.state_machine_arn
            else None
        ),
        batch_executions=(
            StepFunctionsExecutions(sfn, settings.batch_state_machine_arn)
            if sfn is not None and settings.batch_state_machine_arn
            else None
        ),
        batch_publisher=batch_publisher,
    )


def get_services() -> Services:
    global _services
    with _lock:
        if _services is None:
            _services = build_services()
        return _services


def reset_services() -> None:
    """Forget the cached clients (tests and the local runner, when the environment changes)."""
    global _services
    with _lock:
        _services = None
