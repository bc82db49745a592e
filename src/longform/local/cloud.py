"""A local AWS for longform: moto S3, IAM, Lambda, Secrets Manager and Step Functions.

The state machine is the very ``statemachine/generation.asl.json`` of the repository, wired as
``template.yaml`` wires it (its ``DefinitionSubstitutions``), executed by moto's Step Functions
interpreter. Lambda tasks are dispatched in-process to the real handlers in ``functions/*/app.py``
through ``LambdaSimpleBackend.invoke``, the one seam moto offers; an exception becomes a function
error with ``errorType`` = the exception's class name, as the Python Lambda runtime reports it,
so ``Retry`` and ``Catch`` match exactly as on AWS.

The template's EventBridge rules that target its functions are created too, and the bucket sends
its events to EventBridge as ``template.yaml`` configures it: an upload under ``requests/`` reaches
the drop folder function asynchronously (retried twice on an error), as on AWS.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import boto3

from .template import FunctionSpec, event_rules, function_specs, load_template, state_machine_wiring

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
BUCKET = "longform-local-jobs"
STATE_MACHINE_NAME = "longform-generation"
SECRET_NAME = "longform/provider-api-key"  # noqa: S105 - a name, not a secret
TERMINAL_EXECUTION = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


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


class LocalLambdaContext:
    """The parts of the Lambda context object the handlers use."""

    def __init__(self, spec: FunctionSpec, timeout_seconds: float):
        self.function_name = spec.logical_id
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{spec.logical_id}"
        self.memory_limit_in_mb = spec.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{spec.logical_id}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class Invocation:
    function: str
    duration_seconds: float
    timeout_seconds: float
    error_type: str | None
    payload: dict[str, Any]

    @property
    def timed_out(self) -> bool:
        return self.duration_seconds > self.timeout_seconds


@dataclass
class Delivery:
    """An asynchronous invocation (EventBridge -> Lambda): its event, last response and attempts."""

    function: str
    event: dict[str, Any]
    response: Any
    error_type: str | None
    attempts: int


# A hook tests use to make an invocation misbehave: called with (function, event); it may raise
# (a crash before the handler runs) or return a callable run after the handler (a crash after).
FaultHook = Callable[[str, dict[str, Any]], Callable[[], None] | None]


@dataclass
class CloudConfig:
    provider_base_url: str
    model: str = "longform/emulated-writer"
    api_key: str | None = None
    max_tokens_per_request: int = 16_384
    context_length: int | None = None
    deadline_margin_seconds: float = 30.0
    prefill_style: str = "assistant"
    provider_stream: bool = True
    # overrides of the template's Lambda timeouts (seconds), e.g. {"GenerateChunkFunction": 5}
    timeouts: dict[str, float] = field(default_factory=dict)
    # Step Functions Retry intervals really sleep; scale them (tests use a tiny factor)
    retry_sleep_scale: float = 1.0
    log_level: str = "WARNING"
    extra_env: dict[str, str] = field(default_factory=dict)


class _ScaledTime:
    """Stands in for the ``time`` module inside moto's retrier so Retry waits can be shortened."""

    def __init__(self, scale: float):
        self._scale = scale

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds * self._scale))

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def _load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class LocalCloud:
    """Context manager: the longform stack on moto, ready to take jobs."""

    def __init__(self, config: CloudConfig, *, root: Path | None = None):
        self.config = config
        self.root = root or repo_root()
        self.template = load_template(self.root / "template.yaml")
        self.specs = function_specs(self.template)
        self.invocations: list[Invocation] = []
        self.deliveries: list[Delivery] = []  # asynchronous invocations, once each has ended
        self._async_threads: list[threading.Thread] = []
        self.fault_hook: FaultHook | None = None
        self._handlers: dict[str, Callable[[dict[str, Any], Any], Any]] = {}
        self._stack = contextlib.ExitStack()
        self._lock = threading.Lock()
        self.state_machine_arn = ""
        self.secret_arn: str | None = None

    # ---- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> LocalCloud:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._wait_all()
        finally:
            self._stack.close()
            from longform_core.runtime import reset_services

            reset_services()

    def _start(self) -> None:
        from moto import mock_aws
        from moto.awslambda_simple.models import LambdaSimpleBackend
        from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",  # moto's fake credentials
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
        self._stack.enter_context(mock.patch.dict(os.environ, env))
        self._stack.enter_context(
            mock_aws(
                config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
            )
        )
        cloud = self

        def invoke(
            backend: Any,
            function_name: str,
            qualifier: str | None,
            body: Any,
            headers: Any,
            response_headers: Any,
        ) -> bytes:
            return cloud._invoke(function_name, body, response_headers)

        self._stack.enter_context(mock.patch.object(LambdaSimpleBackend, "invoke", invoke))
        self._patch_event_rules()
        if self.config.retry_sleep_scale != 1.0:
            self._stack.enter_context(
                mock.patch.object(retrier_decl, "time", _ScaledTime(self.config.retry_sleep_scale))
            )

        self.s3 = boto3.client("s3", region_name=REGION)
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.s3.create_bucket(Bucket=BUCKET)
        if self.config.api_key:
            sm = boto3.client("secretsmanager", region_name=REGION)
            self.secret_arn = sm.create_secret(Name=SECRET_NAME, SecretString=self.config.api_key)["ARN"]

        function_env = {
            "JOBS_BUCKET": BUCKET,
            "PROVIDER_BASE_URL": self.config.provider_base_url,
            "DEFAULT_MODEL": self.config.model,
            "MAX_TOKENS_PER_REQUEST": str(self.config.max_tokens_per_request),
            "CONTEXT_LENGTH": str(self.config.context_length or 0),
            "PROVIDER_API_KEY_SECRET_ARN": self.secret_arn or "",
            "DEADLINE_MARGIN_SECONDS": str(self.config.deadline_margin_seconds),
            "PREFILL_STYLE": self.config.prefill_style,
            "PROVIDER_STREAM": "true" if self.config.provider_stream else "false",
            "POWERTOOLS_SERVICE_NAME": "longform",
            "POWERTOOLS_METRICS_NAMESPACE": "Longform",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": self.config.log_level,
            "LOG_LEVEL": self.config.log_level,
            **self.config.extra_env,
        }
        self._stack.enter_context(mock.patch.dict(os.environ, function_env))
        from longform_core.runtime import reset_services

        reset_services()

        iam = boto3.client("iam", region_name=REGION)
        role_arn = iam.create_role(
            RoleName="longform-local",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )["Role"]["Arn"]
        lam = boto3.client("lambda", region_name=REGION)
        zipped = io.BytesIO()
        with zipfile.ZipFile(zipped, "w") as zf:
            zf.writestr("app.py", "# dispatched in-process by longform.local.cloud\n")
        function_arns: dict[str, str] = {}
        for logical_id, spec in self.specs.items():
            module_file, _, handler_name = spec.handler.rpartition(".")
            path = self.root / spec.code_uri / f"{module_file.replace('.', '/')}.py"
            module = _load_module(path, f"longform_function_{logical_id}")
            self._quiet_logger(module)
            self._handlers[logical_id] = getattr(module, handler_name)
            function_arns[logical_id] = lam.create_function(
                FunctionName=logical_id,
                Runtime="python3.13",
                Role=role_arn,
                Handler=spec.handler,
                Code={"ZipFile": zipped.getvalue()},
                Timeout=int(self.timeout_for(logical_id)) or 1,
                Architectures=["arm64"],
            )["FunctionArn"]

        definition_uri, wiring = state_machine_wiring(self.template)
        definition = (self.root / definition_uri).read_text(encoding="utf-8")
        for key, logical_id in wiring.items():
            definition = definition.replace("${" + key + "}", function_arns[logical_id])
        self.state_machine_arn = self.sfn.create_state_machine(
            name=STATE_MACHINE_NAME, definition=definition, roleArn=role_arn, type="STANDARD"
        )["stateMachineArn"]
        # set inside the patched environment above, so it goes away with the cloud
        os.environ["STATE_MACHINE_ARN"] = self.state_machine_arn
        os.environ["EVENT_BUS_NAME"] = "default"
        reset_services()
        self._create_event_rules(function_arns)

    @staticmethod
    def _quiet_logger(module: ModuleType) -> None:
        """Handler logs go to stderr locally so stdout stays for the CLI's own output."""
        logger = getattr(module, "logger", None)
        handler = getattr(logger, "registered_handler", None)
        if isinstance(handler, logging.StreamHandler):
            handler.stream = sys.stderr  # not setStream(): the old stream may be closed

    # ---- EventBridge -> Lambda (the S3 drop folder) ---------------------------------------------

    def _create_event_rules(self, function_arns: dict[str, str]) -> None:
        """The template's rules that target its functions, and the bucket's events to EventBridge."""
        bucket = (self.template.get("Resources") or {}).get("JobsBucket", {}).get("Properties") or {}
        eventbridge = (bucket.get("NotificationConfiguration") or {}).get("EventBridgeConfiguration") or {}
        if eventbridge.get("EventBridgeEnabled"):
            self.s3.put_bucket_notification_configuration(
                Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )
        events = boto3.client("events", region_name=REGION)
        for rule in event_rules(self.template):
            pattern = _resolve_refs(rule.event_pattern, {"JobsBucket": BUCKET})
            events.put_rule(Name=rule.logical_id, EventPattern=json.dumps(pattern), State="ENABLED")
            events.put_targets(
                Rule=rule.logical_id,
                Targets=[{"Id": name, "Arn": function_arns[name]} for name in rule.functions],
            )

    def _patch_event_rules(self) -> None:
        """moto's rules deliver to SQS, logs and buses only: hand Lambda targets to ``_invoke_async``."""
        from moto.events.models import Rule

        original = Rule.send_to_targets
        cloud = self

        def send_to_targets(rule: Any, event: Any, transform_input: bool = True) -> None:
            functions = [t for t in rule.targets if ":lambda:" in t["Arn"] and ":function:" in t["Arn"]]
            if len(functions) < len(rule.targets):  # moto raises on the Lambda targets: spare it those
                others = copy.copy(rule)
                others.targets = [t for t in rule.targets if t not in functions]
                original(others, event, transform_input)
            if rule.state != "ENABLED" or not rule.event_pattern.matches_event(event):
                return
            for target in functions:
                cloud._invoke_async(target["Arn"], json.loads(json.dumps(event, default=str)))

        self._stack.enter_context(mock.patch.object(Rule, "send_to_targets", send_to_targets))

    def _invoke_async(self, function_arn: str, event: dict[str, Any]) -> None:
        """Lambda's asynchronous invocation: in the background, retried twice on a function error."""

        def run() -> None:
            name = function_arn.split(":function:")[-1].split(":")[0]
            body = json.dumps(event).encode()
            for attempt in range(1, 4):
                headers: dict[str, Any] = {}
                response = json.loads(self._invoke(function_arn, body, headers))
                failed = "x-amz-function-error" in headers and isinstance(response, dict)
                error_type = str(response.get("errorType")) if failed else None
                if error_type is None or attempt == 3:
                    with self._lock:
                        self.deliveries.append(Delivery(name, event, response, error_type, attempt))
                    return

        thread = threading.Thread(target=run, name="longform-async-invoke", daemon=True)
        with self._lock:
            self._async_threads.append(thread)
        thread.start()

    def wait_async(self, timeout: float = 120.0) -> None:
        """Wait for every asynchronous invocation started so far (and those they started)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = [t for t in self._async_threads if t.is_alive()]
            if not pending:
                return
            for thread in pending:
                thread.join(max(0.0, deadline - time.monotonic()))
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} async invocation(s) still running after {timeout}s")

    def drop(self, name: str, body: bytes | str, suffix: str = ".json") -> list[dict[str, Any]]:
        """Upload ``requests/{name}{suffix}`` as a user would; the drop folder's outcomes."""
        with self._lock:
            seen = len(self.deliveries)
        self.s3.put_object(Bucket=BUCKET, Key=f"requests/{name}{suffix}", Body=body)
        self.wait_async()
        with self._lock:
            new = self.deliveries[seen:]
        return [o for d in new if isinstance(d.response, dict) for o in d.response.get("outcomes", [])]

    def timeout_for(self, logical_id: str) -> float:
        return float(self.config.timeouts.get(logical_id, self.specs[logical_id].timeout_seconds))

    # ---- the in-process Lambda ----------------------------------------------------------------

    def _invoke(self, function_name: str, body: Any, response_headers: dict[str, Any]) -> bytes:
        name = function_name.split(":function:")[-1].split(":")[0]
        spec = self.specs[name]
        raw = body.decode() if isinstance(body, bytes) else (body or "{}")
        event = json.loads(raw) if raw else {}
        timeout = self.timeout_for(name)
        context = LocalLambdaContext(spec, timeout)
        started = time.monotonic()
        error_type: str | None = None
        try:
            after = self.fault_hook(name, event) if self.fault_hook else None
            result = self._handlers[name](event, context)
            if after is not None:
                after()
            payload: Any = result
        except Exception as exc:
            error_type = type(exc).__name__
            payload = {
                "errorMessage": str(exc),
                "errorType": error_type,
                "requestId": context.aws_request_id,
                "stackTrace": traceback.format_exception(exc)[-8:],
            }
        duration = time.monotonic() - started
        if duration > timeout and error_type is None:
            # the real runtime would have killed the invocation: its result never arrives
            error_type = "Sandbox.Timedout"
            payload = {"errorType": error_type, "errorMessage": f"Task timed out after {timeout:.2f} seconds"}
        with self._lock:
            self.invocations.append(Invocation(name, duration, timeout, error_type, event))
        if error_type is not None:
            response_headers["x-amz-function-error"] = "Unhandled"
        data = json.dumps(payload, default=str).encode()
        response_headers["Content-Length"] = str(len(data))
        return data

    # ---- jobs ---------------------------------------------------------------------------------

    @property
    def store(self) -> Any:
        from longform_core.job_store import JobStore

        return JobStore(self.s3, BUCKET)

    @property
    def settings(self) -> Any:
        from longform_core.config import Settings

        return Settings.from_env()

    def submit(self, raw: Any, *, idempotency_key: str | None = None) -> Any:
        from longform_core.runtime import get_services
        from longform_core.submit import submit_job

        return submit_job(raw, get_services(), idempotency_key=idempotency_key)

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
        try:
            executions = self.sfn.list_executions(
                stateMachineArn=self.state_machine_arn, statusFilter="RUNNING"
            )
        except Exception:
            return
        for execution in executions.get("executions", []):
            with contextlib.suppress(Exception):
                self.wait(execution["name"], timeout=120)


def _resolve_refs(node: Any, refs: dict[str, str]) -> Any:
    """``{"Ref": name}`` -> ``refs[name]`` throughout a template fragment."""
    if isinstance(node, dict):
        if set(node) == {"Ref"} and node["Ref"] in refs:
            return refs[node["Ref"]]
        return {k: _resolve_refs(v, refs) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_refs(v, refs) for v in node]
    return node


@contextlib.contextmanager
def quiet_moto_logs() -> Iterator[None]:
    noisy = [logging.getLogger(n) for n in ("moto", "botocore", "urllib3")]
    levels = [lg.level for lg in noisy]
    for lg in noisy:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(noisy, levels, strict=True):
            lg.setLevel(level)
