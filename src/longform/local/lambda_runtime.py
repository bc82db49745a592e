"""An in-process Lambda runtime for the template's functions.

Each function's handler (``functions/*/app.py``, as ``template.yaml`` names it) is loaded once and
invoked with a Lambda context whose remaining time follows the template's timeout. An exception
becomes a function error with ``errorType`` = the exception's class name, as the Python Lambda
runtime reports it, so Step Functions ``Retry`` and ``Catch`` match exactly as on AWS. An
invocation that ran past its timeout is reported as ``Sandbox.Timedout`` (the real runtime would
have killed it), so tests can assert that none did.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .aws import ACCOUNT_ID, REGION
from .template import FunctionSpec

Handler = Callable[[dict[str, Any], Any], Any]
# A hook tests use to make an invocation misbehave: called with (function, event); it may raise
# (a crash before the handler runs) or return a callable run after the handler (a crash after).
FaultHook = Callable[[str, dict[str, Any]], Callable[[], None] | None]
ASYNC_ATTEMPTS = 3  # Lambda's asynchronous invocation: the first try and two retries


class InvocationKilled(BaseException):
    """Raised inside a handler to stand for the runtime killing it (out of memory, a crash, a
    kill -9): a ``BaseException``, so none of the handler's ``except Exception`` blocks run, as none
    would; Lambda reports it as ``Runtime.ExitError``."""


class LambdaContext:
    """The parts of the Lambda context object the handlers use (the local cloud's and the tests')."""

    def __init__(
        self,
        function_name: str,
        timeout_seconds: float,
        memory_mb: int = 512,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._clock = clock
        self._deadline = clock() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - self._clock()) * 1000))


@dataclass
class Invocation:
    function: str
    duration_seconds: float
    timeout_seconds: float
    error_type: str | None
    payload: dict[str, Any]
    error_message: str | None = None

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


def _load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _quiet_logger(module: ModuleType) -> None:
    """Handler logs go to stderr locally so stdout stays for the CLI's own output."""
    logger = getattr(module, "logger", None)
    handler = getattr(logger, "registered_handler", None)
    if isinstance(handler, logging.StreamHandler):
        handler.stream = sys.stderr  # not setStream(): the old stream may be closed


def _no_metrics_output(module: ModuleType) -> None:
    """No CloudWatch locally: the handler's Powertools ``Metrics`` record nothing and print nothing
    (stdout is the CLI's; ``--out -`` writes the answer there). Not left to
    ``POWERTOOLS_METRICS_DISABLED``: Powertools prints a metric's values to stdout as soon as it
    holds 100 of them, whatever that says, and with it set never clears its metric set (shared by
    every instance), so the first flush without it (a thread that outlived its local cloud) printed
    everything accumulated since."""
    metrics = getattr(module, "metrics", None)
    # ``Metrics`` hands its work to a provider, whose ``log_metrics`` flushes through itself
    provider = getattr(metrics, "provider", metrics)
    clear = getattr(provider, "clear_metrics", None)
    if callable(clear):

        def add_metric(*args: Any, **kwargs: Any) -> None:
            return None

        def flush_metrics(*args: Any, **kwargs: Any) -> None:
            clear()

        provider.add_metric = add_metric  # type: ignore[union-attr]
        provider.flush_metrics = flush_metrics  # type: ignore[union-attr]


def function_name_of(name_or_arn: str) -> str:
    return name_or_arn.split(":function:")[-1].split(":")[0]


class LambdaRuntime:
    """The template's functions, invoked in-process (synchronously or asynchronously)."""

    def __init__(self, root: Path, specs: dict[str, FunctionSpec], timeouts: dict[str, float]):
        self.specs = specs
        self._timeouts = timeouts
        self.invocations: list[Invocation] = []
        self.deliveries: list[Delivery] = []  # asynchronous invocations, once each has ended
        self.fault_hook: FaultHook | None = None
        self._async_threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._root = root
        self._handlers: dict[str, Handler] = {}
        # what an invocation's remaining time and duration are measured by: tests give one that
        # moves only when they say (``tests/integration/virtual_time.py``), so a deadline is reached
        # by the emulator's pacing, never by how fast this machine is
        self.clock: Callable[[], float] = time.monotonic

    def load_handlers(self) -> None:
        """Import every handler module, as a cold start does: after the environment is in place
        (Powertools reads the service name, namespace and log level when the module is imported)."""
        for logical_id, spec in self.specs.items():
            module_file, _, handler_name = spec.handler.rpartition(".")
            path = self._root / spec.code_uri / f"{module_file.replace('.', '/')}.py"
            module = _load_module(path, f"longform_function_{logical_id}")
            _quiet_logger(module)
            _no_metrics_output(module)
            self._handlers[logical_id] = getattr(module, handler_name)

    def timeout_for(self, logical_id: str) -> float:
        return float(self._timeouts.get(logical_id, self.specs[logical_id].timeout_seconds))

    def context_for(self, logical_id: str) -> LambdaContext:
        spec = self.specs[logical_id]
        return LambdaContext(logical_id, self.timeout_for(logical_id), spec.memory_mb, clock=self.clock)

    def call(self, logical_id: str, event: dict[str, Any]) -> Any:
        """The handler's return value (an exception propagates): for a direct, in-process call."""
        return self._handlers[logical_id](event, self.context_for(logical_id))

    def invoke(self, name_or_arn: str, event: dict[str, Any]) -> tuple[Any, str | None]:
        """One invocation as Lambda reports it: (payload, error type or None)."""
        name = function_name_of(name_or_arn)
        timeout = self.timeout_for(name)
        context = self.context_for(name)
        started = self.clock()
        error_type: str | None = None
        try:
            after = self.fault_hook(name, event) if self.fault_hook else None
            payload: Any = self._handlers[name](event, context)
            if after is not None:
                after()
        except InvocationKilled as exc:
            error_type = "Runtime.ExitError"
            payload = {
                "errorType": error_type,
                "errorMessage": f"RequestId: {context.aws_request_id} Error: Runtime exited with error: "
                f"signal: killed ({exc})",
            }
        except Exception as exc:
            error_type = type(exc).__name__
            payload = {
                "errorMessage": str(exc),
                "errorType": error_type,
                "requestId": context.aws_request_id,
                "stackTrace": traceback.format_exception(exc)[-8:],
            }
        duration = self.clock() - started
        if duration > timeout and error_type is None:
            # the real runtime would have killed the invocation: its result never arrives
            error_type = "Sandbox.Timedout"
            payload = {"errorType": error_type, "errorMessage": f"Task timed out after {timeout:.2f} seconds"}
        with self._lock:
            message = (
                str(payload.get("errorMessage", "")) if error_type and isinstance(payload, dict) else None
            )
            self.invocations.append(Invocation(name, duration, timeout, error_type, event, message))
        return payload, error_type

    def invoke_wire(self, name_or_arn: str, body: Any, response_headers: dict[str, Any]) -> bytes:
        """The moto seam: the request body in, the response body out (headers mark a function error)."""
        raw = body.decode() if isinstance(body, bytes) else (body or "{}")
        payload, error_type = self.invoke(name_or_arn, json.loads(raw) if raw else {})
        if error_type is not None:
            response_headers["x-amz-function-error"] = "Unhandled"
        data = json.dumps(payload, default=str).encode()
        response_headers["Content-Length"] = str(len(data))
        return data

    def invoke_async(self, name_or_arn: str, event: dict[str, Any]) -> None:
        """Lambda's asynchronous invocation: in the background, retried twice on a function error."""

        def run() -> None:
            for attempt in range(1, ASYNC_ATTEMPTS + 1):
                response, error_type = self.invoke(name_or_arn, event)
                if error_type is None or attempt == ASYNC_ATTEMPTS:
                    delivery = Delivery(function_name_of(name_or_arn), event, response, error_type, attempt)
                    with self._lock:
                        self.deliveries.append(delivery)
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
