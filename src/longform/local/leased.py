"""One process drives a job: an execution of the local cloud runs only under its name's lease.

Step Functions executions live in the memory of the process that started them (moto), but jobs live
in the shared state directory. So ``StartExecution`` (from ``submit``, ``resume``, ``serve`` at start,
a batch's ``states:startExecution.sync`` iteration) first takes the lease of the execution's name
(``state.Leases``: a ``flock`` that the kernel releases when the process dies): when another live
process holds it, the start fails with ``ExecutionAlreadyExists``, as AWS answers for a running
execution of that name, and the caller treats the job as already running. The lease is released
when the execution ends, whatever way it ends.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any
from unittest import mock
from urllib.parse import unquote

from .state import Leases


def _note() -> str:
    command = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    args = " ".join(a for a in sys.argv[1:3] if not a.startswith("-"))
    return f"{command} {args}".strip()


@contextlib.contextmanager
def leased_executions(leases: Leases) -> Iterator[None]:
    """Inside ``mock_aws``: every execution this process starts holds its name's lease."""
    from moto.stepfunctions.exceptions import ExecutionAlreadyExists
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    real_start = StepFunctionsParserBackend.start_execution
    real_logic = ExecutionWorker._execution_logic
    note = _note()

    def start_execution(
        backend: Any, state_machine_arn: str, name: Any = None, *args: Any, **kwargs: Any
    ) -> Any:
        if not name:
            return real_start(backend, state_machine_arn, name, *args, **kwargs)
        ours = leases.held_here(name)
        if not ours and not leases.acquire(name, note):
            holder = leases.holder(name) or "another longform process"
            raise ExecutionAlreadyExists(f"Execution {name} is running in {holder}")
        try:
            execution = real_start(backend, state_machine_arn, name, *args, **kwargs)
        except BaseException:
            if not ours:
                leases.release(name)
            raise
        if not ours and str(getattr(execution, "exec_status", "RUNNING")) not in (
            "RUNNING",
            "ExecutionStatus.RUNNING",
        ):
            leases.release(name)  # moto handed back an execution of that name that has ended
        return execution

    def execution_logic(worker: Any) -> Any:
        name = worker._evaluation_details.execution_details.name
        try:
            return real_logic(worker)  # type: ignore[no-untyped-call]
        finally:
            leases.release(name)

    with (
        mock.patch.object(StepFunctionsParserBackend, "start_execution", start_execution),
        mock.patch.object(ExecutionWorker, "_execution_logic", execution_logic),
    ):
        try:
            yield
        finally:
            leases.release_all()


@contextlib.contextmanager
def durable_listing(cloud: Any) -> Iterator[None]:
    """The workflows' recent executions, as the API lists jobs and batches: on AWS they outlive any
    process (90 days); locally they live in one process's memory, so a restarted ``serve`` would
    list nothing. The listing comes from the state directory instead: every job (batch) on disk,
    the most recently submitted first (a job or a batch is its execution's name)."""
    from longform_core.errors import PageTokenInvalid
    from longform_core.executions import StepFunctionsExecutions

    real_recent = StepFunctionsExecutions.recent

    def recent(executions: Any, limit: int, next_token: str | None = None) -> tuple[list[str], str | None]:
        kept = {
            cloud.state_machine_arn: ("jobs", "request.json"),  # written once, at submit
            cloud.batch_state_machine_arn: ("batch-runs", "input.jsonl"),
        }.get(executions.state_machine_arn)
        if kept is None:
            return real_recent(executions, limit, next_token)
        folder, marker = kept
        start = 0
        if next_token:
            if not next_token.isdigit():
                raise PageTokenInvalid("not a valid or current page token")
            start = int(next_token)
        root = cloud.store_dir.bucket_dir / folder
        found = []
        if root.is_dir():
            for entry in root.iterdir():
                with contextlib.suppress(OSError):
                    found.append(((entry / marker).stat().st_mtime_ns, entry.name))
        found.sort(reverse=True)
        names = [unquote(name) for _, name in found]
        page = names[start : start + limit]
        more = start + limit < len(names)
        return page, str(start + limit) if more else None

    with mock.patch.object(StepFunctionsExecutions, "recent", recent):
        yield
