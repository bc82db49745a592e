"""The local cloud: longform's stack on moto, ready to take jobs (the public API of ``longform.local``).

The state machine is the very ``statemachine/generation.asl.json`` of the repository, wired as
``template.yaml`` wires it (its ``DefinitionSubstitutions``), executed by moto's Step Functions
interpreter (``aws.py``); Lambda tasks run in-process in the real handlers (``lambda_runtime.py``)
with the environment ``template.yaml`` gives them (``template.function_environment``). The
template's EventBridge rules that target its functions are created too, and the bucket sends its
events to EventBridge as the template configures it: an upload under ``requests/`` reaches the
drop folder function asynchronously (retried twice on an error), as on AWS.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import boto3

from .aws import REGION, TERMINAL_EXECUTION, StartedOnEnter, start_moto
from .batch import wait_batches
from .disk_store import disk_backed_bucket
from .lambda_runtime import Delivery, FaultHook, Invocation, LambdaRuntime
from .leased import durable_listing, leased_executions
from .provision import (
    BUCKET,
    SECRET_NAME,
    STATE_MACHINE_NAME,
    Stack,
    ValidatedDefinitions,
    create_event_rules,
    create_functions,
    create_role,
    create_state_machines,
)
from .state import StateDir
from .template import function_environment, function_specs, load_template

if TYPE_CHECKING:
    from .providers import Provider

__all__ = ["BUCKET", "STATE_MACHINE_NAME", "TERMINAL_EXECUTION", "CloudConfig", "LocalCloud"]
# who the callers of `longform serve` are (no auth on loopback: api.routes.caller_owner gives the
# source address), so a job `longform run` starts is the local user's in serve's API too
LOCAL_OWNER = "ip:127.0.0.1"
LOCAL_ENV = {
    # no X-Ray daemon and no CloudWatch locally
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
}


def repo_root() -> Path:
    """The repository that holds template.yaml (this package lives in <root>/src/longform/local)."""
    env = os.environ.get("LONGFORM_REPO")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "template.yaml").exists() and (parent / "statemachine").is_dir():
            return parent
    raise RuntimeError("cannot find the longform repository (template.yaml); set LONGFORM_REPO")


@dataclass
class CloudConfig:
    """What differs from the template's defaults locally (None: the template's parameter default)."""

    provider_base_url: str
    model: str = "longform/emulated-writer"
    api_key: str | None = None
    max_tokens_per_request: int | None = None
    context_length: int | None = None
    deadline_margin_seconds: float | None = None
    prefill_style: str | None = None
    provider_stream: bool | None = None
    draft_interval_seconds: float | None = None
    draft_min_tokens: int | None = None
    # overrides of the template's Lambda timeouts (seconds), e.g. {"GenerateChunkFunction": 5}
    timeouts: dict[str, float] = field(default_factory=dict)
    # Step Functions Retry intervals really sleep; scale them (tests use a tiny factor)
    retry_sleep_scale: float = 1.0
    log_level: str = "WARNING"
    extra_env: dict[str, str] = field(default_factory=dict)
    # the state directory (state.py): the bucket's only copy, shared with other processes; None: a
    # temporary directory removed at exit (the same store, nothing kept: tests, benchmarks)
    state_dir: Path | None = None

    @classmethod
    def for_provider(cls, provider: Provider, **settings: Any) -> CloudConfig:
        """The configuration for ``provider`` (``providers.choose_provider``: its URL, model and key)
        with a command's own ``settings``: the one place a chosen provider meets the cloud."""
        return cls(
            provider_base_url=provider.base_url, model=provider.model, api_key=provider.api_key, **settings
        )

    def parameters(self) -> dict[str, str]:
        """The template parameters this configuration sets."""
        values: dict[str, Any] = {
            "ProviderBaseUrl": self.provider_base_url,
            "DefaultModel": self.model,
            "MaxTokensPerRequest": self.max_tokens_per_request,
            "ContextLength": self.context_length,
            "DeadlineMarginSeconds": self.deadline_margin_seconds,
            "PrefillStyle": self.prefill_style,
            "ProviderStreaming": None if self.provider_stream is None else str(self.provider_stream).lower(),
            "DraftIntervalSeconds": self.draft_interval_seconds,
            "DraftMinTokens": self.draft_min_tokens,
            "LogLevel": self.log_level,
            # a local run is the user's own machine talking to the server they chose (a LAN box over
            # plain http included); a deployed stack refuses plain http off loopback
            "AllowInsecureProviderUrl": "true",
        }
        return {name: str(value) for name, value in values.items() if value is not None}


class LocalCloud(StartedOnEnter):
    """Context manager: the longform stack on moto, ready to take jobs."""

    def __init__(self, config: CloudConfig, *, root: Path | None = None):
        super().__init__()
        self.config = config
        self.root = root or repo_root()
        self.template = load_template(self.root / "template.yaml")
        self.specs = function_specs(self.template)
        self.lambdas: LambdaRuntime | None = None
        self.state_machine_arn = ""
        self.batch_state_machine_arn = ""
        self.secret_arn: str | None = None

    # ---- lifecycle ----------------------------------------------------------------------------

    def __exit__(self, *exc: object) -> None:
        try:
            self._wait_all()
        finally:
            super().__exit__(*exc)
            from longform_core.runtime import reset_services

            reset_services()

    def _start(self) -> None:
        from longform_core.runtime import reset_services

        lambdas = self.lambdas = LambdaRuntime(self.root, self.specs, self.config.timeouts)
        start_moto(
            self._stack,
            on_invoke=lambdas.invoke_wire,
            on_async_invoke=lambdas.invoke_async,
            retry_sleep_scale=self.config.retry_sleep_scale,
        )
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.s3.create_bucket(Bucket=BUCKET)
        self.state: StateDir | None = None
        if self.config.state_dir is not None:
            self.state = StateDir(self.config.state_dir)
            self.store_dir = self.state
        else:
            scratch = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="longform-state-"))
            self.store_dir = StateDir(Path(scratch), fsync=False)  # nothing to survive a power loss
        self.store_dir.disk.remove_stale_temporaries()
        self._stack.enter_context(disk_backed_bucket(BUCKET, self.store_dir.disk))
        self._stack.enter_context(leased_executions(self.store_dir.leases))
        self._stack.enter_context(durable_listing(self))
        stack = self._provision()
        env = function_environment(
            self.template,
            refs=stack.refs(),
            parameters={**self.config.parameters(), "ProviderApiKeySecretArn": self.secret_arn or ""},
        )
        env.update(LOCAL_ENV, POWERTOOLS_LOG_LEVEL=self.config.log_level, **self.config.extra_env)
        self._stack.enter_context(mock.patch.dict(os.environ, env))
        reset_services()
        lambdas.load_handlers()
        create_event_rules(self.s3, boto3.client("events", region_name=REGION), self.template, stack)

    def _provision(self) -> Stack:
        """The template's resources on moto (``provision.py``)."""
        if self.config.api_key:
            sm = boto3.client("secretsmanager", region_name=REGION)
            self.secret_arn = sm.create_secret(Name=SECRET_NAME, SecretString=self.config.api_key)["ARN"]
        role_arn = create_role(boto3.client("iam", region_name=REGION))
        lam = boto3.client("lambda", region_name=REGION)
        stack = Stack(role_arn, create_functions(lam, self.specs, role_arn, self.timeout_for))
        stack.secret_arn = self.secret_arn
        cache = self.state.root / "cache" / "validated-asl" if self.state is not None else None
        create_state_machines(self.sfn, self.root, self.template, stack, ValidatedDefinitions(cache))
        self.state_machine_arn = stack.state_machine_arn
        self.batch_state_machine_arn = stack.batch_state_machine_arn
        return stack

    # ---- the functions ------------------------------------------------------------------------

    @property
    def runtime(self) -> LambdaRuntime:
        if self.lambdas is None:
            raise RuntimeError("the local cloud is not started")
        return self.lambdas

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        """Call one of the template's functions directly, in-process; its return value."""
        return self.runtime.call(function, event)

    def timeout_for(self, logical_id: str) -> float:
        return float(self.config.timeouts.get(logical_id, self.specs[logical_id].timeout_seconds))

    @property
    def invocations(self) -> list[Invocation]:
        return self.runtime.invocations

    @property
    def deliveries(self) -> list[Delivery]:
        return self.runtime.deliveries

    @property
    def fault_hook(self) -> FaultHook | None:
        return self.runtime.fault_hook

    @fault_hook.setter
    def fault_hook(self, hook: FaultHook | None) -> None:
        self.runtime.fault_hook = hook

    def invoke_async(self, function_arn: str, event: dict[str, Any]) -> None:
        self.runtime.invoke_async(function_arn, event)

    def wait_async(self, timeout: float = 120.0) -> None:
        self.runtime.wait_async(timeout)

    def drop(self, name: str, body: bytes | str, suffix: str = ".json") -> list[dict[str, Any]]:
        """Upload ``requests/{name}{suffix}`` as a user would; the drop folder's outcomes."""
        seen = len(self.deliveries)
        self.s3.put_object(Bucket=BUCKET, Key=f"requests/{name}{suffix}", Body=body)
        self.wait_async()
        new = self.deliveries[seen:]
        return [o for d in new if isinstance(d.response, dict) for o in d.response.get("outcomes", [])]

    # ---- jobs ---------------------------------------------------------------------------------

    @property
    def store(self) -> Any:
        from longform_core.job_store import JobStore

        return JobStore(self.s3, BUCKET)

    @property
    def settings(self) -> Any:
        from longform_core.config import Settings

        return Settings.from_env()

    def submit(self, raw: Any, *, idempotency_key: str | None = None, owner: str | None = None) -> Any:
        from longform_core.runtime import get_services
        from longform_core.submit import submit_job

        return submit_job(raw, get_services(), idempotency_key=idempotency_key, owner=owner)

    def resume(self, job_id: str) -> str:
        """Start a new execution of the state machine for a job that did not end (its first chunk
        continues from the last commit, or the draft of the chunk in flight); its ARN."""
        from longform_core.runtime import get_services

        arn, _ = get_services().require_executions().start(job_id, json.dumps({"job_id": job_id}))
        return arn

    def unfinished_jobs(self) -> list[str]:
        """Jobs in the bucket whose manifest has not reached a terminal status."""
        listing = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix="jobs/", Delimiter="/"
        )
        ids = [p["Prefix"].split("/")[1] for page in listing for p in page.get("CommonPrefixes", [])]
        unfinished = []
        for job_id in ids:
            try:
                manifest = self.store.find_manifest(job_id)
            except ValueError:  # an unreadable manifest (a torn write on a power loss): skipped
                continue
            if manifest is not None and not manifest.terminal:
                unfinished.append(job_id)
        return unfinished

    def execution_arn(self, job_id: str) -> str:
        from longform_core.executions import execution_arn_for

        return execution_arn_for(self.state_machine_arn, job_id)

    def wait(
        self,
        job_id: str,
        *,
        timeout: float = 600.0,
        poll: float = 0.1,
        on_progress: Callable[[Any], None] | None = None,
    ) -> dict[str, Any]:
        """Wait for the execution to end; calls ``on_progress(manifest)`` whenever it changes."""
        arn = self.execution_arn(job_id)
        deadline = time.monotonic() + timeout
        seen: tuple[int, str] | None = None
        while True:
            desc = self.sfn.describe_execution(executionArn=arn)
            if on_progress is not None:
                manifest = self.store.find_manifest(job_id)
                if manifest is not None:
                    marker = (manifest.chunks, manifest.status)
                    if marker != seen:
                        seen = marker
                        on_progress(manifest)
            if desc["status"] in TERMINAL_EXECUTION:
                return dict(desc)
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {arn} still {desc['status']} after {timeout}s")
            time.sleep(poll)

    def history(self, job_id: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": self.execution_arn(job_id), "maxResults": 1000}
        while True:
            page = self.sfn.get_execution_history(**kwargs)
            events.extend(dict(e) for e in page["events"])
            token = page.get("nextToken")
            if not token:
                return events
            kwargs["nextToken"] = token

    def state_transitions(self, job_id: str) -> int:
        return sum(1 for e in self.history(job_id) if e["type"].endswith("StateEntered"))

    def states_entered(self, job_id: str) -> list[str]:
        return [
            e["stateEnteredEventDetails"]["name"]
            for e in self.history(job_id)
            if e["type"].endswith("StateEntered")
        ]

    def _wait_all(self) -> None:
        """Executions run in background threads: let them finish before the mock goes away."""
        with contextlib.suppress(Exception):
            self.wait_async()
        with contextlib.suppress(Exception):
            wait_batches(self)
        try:
            executions = self.sfn.list_executions(
                stateMachineArn=self.state_machine_arn, statusFilter="RUNNING"
            )
        except Exception:
            return
        for execution in executions.get("executions", []):
            with contextlib.suppress(Exception):
                self.wait(execution["name"], timeout=120)
