"""moto as the local AWS: fake credentials, the mocks, and the two seams longform needs.

- ``LambdaSimpleBackend.invoke`` is where moto's Step Functions interpreter (and ``Invoke``)
  hands a Lambda invocation over: it goes to ``on_invoke``, the in-process Lambda runtime.
- moto's EventBridge rules deliver to SQS, logs and buses only: their Lambda targets go to
  ``on_async_invoke`` instead (Lambda's asynchronous invocation).
- Step Functions ``Retry`` intervals really sleep in moto's retrier: they can be scaled down.
- moto 5.2.5's port of LocalStack's interpreter leaves out the casing step of the optimised
  ``states:startExecution`` integration (``StateTaskService._normalise_parameters`` and
  ``_normalise_response`` are no-ops): the ASL's ``StateMachineArn``/``Name``/``Input``, as AWS
  documents them, reach botocore's serializer as they are (a ``KeyError``, ``States.Runtime``), and
  the ``.sync:2`` result would keep boto's ``status``/``output`` where AWS answers
  ``Status``/``Output``. ``restore_sfn_integration_casing`` puts the step back for that integration,
  as LocalStack does it: through the service model, with moto's own ``_to_boto_request`` and
  ``_from_boto_response``. Everything else (the child execution, the polling, the failure of a
  failed child as ``States.TaskFailed``) is moto's interpreter as it is.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, Self
from unittest import mock

REGION = "us-east-1"
# the statuses of a Step Functions execution that has ended
TERMINAL_EXECUTION = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
ACCOUNT_ID = "123456789012"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's fake credentials
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}

# (function name or ARN, request body, response headers to fill) -> response payload bytes
InvokeSeam = Callable[[str, Any, dict[str, Any]], bytes]
AsyncInvokeSeam = Callable[[str, dict[str, Any]], None]


class StartedOnEnter:
    """A context manager that starts itself on an ``ExitStack`` (``_start`` enters what it needs on
    ``self._stack``): a failed start closes what it had entered, the exit closes it all. The
    lifecycle of both local stacks (``cloud.LocalCloud``, ``samlocal.local_aws.LocalAws``)."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()

    def _start(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


class _ScaledTime:
    """Stands in for the ``time`` module inside moto's retrier so Retry waits can be shortened."""

    def __init__(self, scale: float):
        self._scale = scale

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds * self._scale))

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def start_moto(
    stack: contextlib.ExitStack,
    *,
    on_invoke: InvokeSeam,
    on_async_invoke: AsyncInvokeSeam,
    retry_sleep_scale: float = 1.0,
) -> None:
    """Enter moto (with Step Functions executing) and its seams on ``stack``."""
    defer_package_init("moto.batch")
    from moto import mock_aws
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.events.models import Rule
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    stack.enter_context(mock.patch.dict(os.environ, FAKE_CREDENTIALS))
    stack.enter_context(
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}})
    )

    def invoke(
        backend: Any,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> bytes:
        return on_invoke(function_name, body, response_headers)

    stack.enter_context(mock.patch.object(LambdaSimpleBackend, "invoke", invoke))

    original = Rule.send_to_targets

    def send_to_targets(rule: Any, event: Any, transform_input: bool = True) -> None:
        functions = [t for t in rule.targets if ":lambda:" in t["Arn"] and ":function:" in t["Arn"]]
        if len(functions) < len(rule.targets):  # moto raises on the Lambda targets: spare it those
            others = copy.copy(rule)
            others.targets = [t for t in rule.targets if t not in functions]
            original(others, event, transform_input)
        if rule.state != "ENABLED" or not rule.event_pattern.matches_event(event):
            return
        for target in functions:
            on_async_invoke(target["Arn"], json.loads(json.dumps(event, default=str)))

    stack.enter_context(mock.patch.object(Rule, "send_to_targets", send_to_targets))
    restore_sfn_integration_casing(stack)
    stop_after_the_worker_starts(stack)
    if retry_sleep_scale != 1.0:
        import botocore.endpoint

        stack.enter_context(mock.patch.object(retrier_decl, "time", _ScaledTime(retry_sleep_scale)))
        # botocore's own retries (a 500 of the local store) sleep too: the same scale
        stack.enter_context(mock.patch.object(botocore.endpoint, "time", _ScaledTime(retry_sleep_scale)))


def defer_package_init(name: str) -> None:
    """Register the package ``name`` without running its ``__init__`` until an attribute of it is
    asked for (its submodules import as usual).

    For ``moto.batch``: moto's Step Functions interpreter imports ``moto.batch.utils`` (one enum,
    for its AWS Batch integration, which longform's workflows never use), and importing a
    submodule runs the package's ``__init__``, which loads moto's whole EC2 model (it reads
    botocore's EC2 service model three times to list regions): about 1.5 s of CPU at every start of
    the local stack, most of moto's import time. Whatever really uses the package (moto's backend
    lookup asks for ``batch_backends``) runs the ``__init__`` then, as an import would have."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def first_use(attribute: str) -> Any:
        del module.__dict__["__getattr__"]
        loader.exec_module(module)
        return getattr(module, attribute)

    module.__dict__["__getattr__"] = first_use
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:  # as the import system does once a submodule is loaded
        setattr(sys.modules[parent], child, module)


STOP_WAIT_SECONDS = 30.0


def stop_after_the_worker_starts(stack: contextlib.ExitStack) -> None:
    """``StopExecution`` of an execution moto has just started: its worker thread builds the
    evaluation environment only once it runs, and moto's ``stop`` before that fails with an
    ``AttributeError`` (AWS stops any started execution). The stop waits for the environment."""
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    real_stop = ExecutionWorker.stop

    def stop(worker: Any, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while worker.env is None and time.monotonic() < deadline:
            time.sleep(0.005)
        return real_stop(worker, *args, **kwargs)

    stack.enter_context(mock.patch.object(ExecutionWorker, "stop", stop))


@functools.lru_cache(maxsize=32)
def _operation_model(service: str, action: str) -> Any:
    """botocore's model of ``service``'s operation ``action`` (snake case, e.g. ``start_execution``),
    loaded once (reading the service model from disk is slow)."""
    import botocore.session
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model(service)
    names = {xform_name(name): name for name in model.operation_names}
    return model.operation_model(names[action])


def restore_sfn_integration_casing(stack: contextlib.ExitStack) -> None:
    """The request and response casing of the ``states:*`` service integration (see the module doc)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )

    original_parameters = StateTaskService._normalise_parameters
    original_response = StateTaskService._normalise_response

    def normalise_parameters(
        task: Any, parameters: dict[str, Any], boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:  # fmt: skip
        if not isinstance(task, StateTaskServiceSfn):
            return original_parameters(task, parameters, boto_service_name, service_action_name)
        service = task._get_boto_service_name(boto_service_name=boto_service_name)
        action = task._get_boto_service_action(service_action_name=service_action_name)
        task._to_boto_request(parameters, _operation_model(service, action).input_shape)
        return None

    def normalise_response(
        task: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None
    ) -> None:
        if not isinstance(task, StateTaskServiceSfn):
            return original_response(task, response, boto_service_name, service_action_name)
        service = task._get_boto_service_name(boto_service_name=boto_service_name)
        action = task._get_boto_service_action(service_action_name=service_action_name)
        task._from_boto_response(response, _operation_model(service, action).output_shape)
        return None

    stack.enter_context(mock.patch.object(StateTaskService, "_normalise_parameters", normalise_parameters))
    stack.enter_context(mock.patch.object(StateTaskService, "_normalise_response", normalise_response))


@contextlib.contextmanager
def quiet_moto_logs() -> Iterator[None]:
    noisy = [logging.getLogger(n) for n in ("moto", "botocore", "urllib3")]
    levels = [lg.level for lg in noisy]
    for lg in noisy:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(noisy, levels, strict=True):
            lg.setLevel(level)
