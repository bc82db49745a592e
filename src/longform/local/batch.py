"""Batches on the local cloud: the helpers the CLI, the tests and the benchmark use (submit, wait,
drop, cancel, the output). The batch workflow is created, wired as ``template.yaml`` wires it, by
``provision.py``.

The state machine is the very ``statemachine/batch.asl.json``, its ``${...}`` resolved from the
template's ``DefinitionSubstitutions`` (its two functions and the generation state machine), run by
moto's Step Functions interpreter: the Distributed Map reads its item list from S3 (``ItemReader``,
``InputType`` JSON), runs at most ``MaxConcurrencyPath`` iterations at once, and each iteration's
``states:startExecution.sync:2`` task starts a real execution of the generation workflow and polls
it until it ends (moto polls every 0.5 s).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .aws import TERMINAL_EXECUTION
from .provision import BUCKET

if TYPE_CHECKING:
    from longform_core.batch.status import BatchView
    from longform_core.batch.submit import SubmittedBatch

    from .cloud import LocalCloud


def batch_execution_arn(cloud: LocalCloud, batch_id: str) -> str:
    from longform_core.executions import execution_arn_for

    return execution_arn_for(cloud.batch_state_machine_arn, batch_id)


def submit(cloud: LocalCloud, data: bytes, **kwargs: Any) -> SubmittedBatch:
    """The one batch submit path (``batch.submit.submit_batch``), in-process."""
    from longform_core.batch.submit import submit_batch
    from longform_core.runtime import get_services

    return submit_batch(data, get_services(), **kwargs)


def view(cloud: LocalCloud, batch_id: str) -> BatchView:
    from longform_core.batch.status import get_batch
    from longform_core.runtime import get_services

    return get_batch(batch_id, get_services())


def cancel(cloud: LocalCloud, batch_id: str) -> tuple[BatchView, bool]:
    from longform_core.batch.cancel import cancel_batch
    from longform_core.runtime import get_services

    return cancel_batch(batch_id, get_services())


def wait(
    cloud: LocalCloud,
    batch_id: str,
    *,
    timeout: float = 3600.0,
    poll: float = 0.25,
    on_progress: Callable[[BatchView], None] | None = None,
    progress_every: float = 1.0,
) -> dict[str, Any]:
    """Wait for the batch's execution to end; ``on_progress(view)`` about every ``progress_every`` s
    (a view reads every line's manifest: it is not free)."""
    arn = batch_execution_arn(cloud, batch_id)
    deadline = time.monotonic() + timeout
    shown = 0.0
    while True:
        desc = cloud.sfn.describe_execution(executionArn=arn)
        if on_progress is not None and time.monotonic() - shown >= progress_every:
            started = time.monotonic()
            with contextlib.suppress(Exception):  # the batch's files may not be there yet
                on_progress(view(cloud, batch_id))
            shown = time.monotonic()
            # never spend more than a third of the time reading progress
            progress_every = max(progress_every, 3 * (shown - started))
        if desc["status"] in TERMINAL_EXECUTION:
            return dict(desc)
        if time.monotonic() > deadline:
            raise TimeoutError(f"batch execution {arn} still {desc['status']} after {timeout}s")
        time.sleep(poll)


def output_lines(cloud: LocalCloud, batch_id: str) -> list[dict[str, Any]]:
    """``output.jsonl`` of an ended batch, parsed."""
    from longform_core.runtime import get_services

    data = get_services().batches.get_output(batch_id)
    if data is None:
        raise FileNotFoundError(f"batch {batch_id} has no output.jsonl")
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line]


def drop(cloud: LocalCloud, name: str, body: bytes | str) -> list[dict[str, Any]]:
    """Upload ``batches/{name}.jsonl`` as a user would; the batch drop folder's outcomes."""
    seen = len(cloud.deliveries)
    cloud.s3.put_object(Bucket=BUCKET, Key=f"batches/{name}.jsonl", Body=body)
    cloud.wait_async()
    new = cloud.deliveries[seen:]
    return [o for d in new if isinstance(d.response, dict) for o in d.response.get("outcomes", [])]


def generation_executions(cloud: LocalCloud) -> list[str]:
    """Names of every execution of the generation workflow (each line of a batch starts one)."""
    names: list[str] = []
    kwargs: dict[str, Any] = {"stateMachineArn": cloud.state_machine_arn, "maxResults": 1000}
    while True:
        page = cloud.sfn.list_executions(**kwargs)
        names.extend(e["name"] for e in page["executions"])
        token = page.get("nextToken")
        if not token:
            return names
        kwargs["nextToken"] = token


def wait_batches(cloud: LocalCloud, timeout: float = 600.0) -> None:
    """Let every running batch execution end before the mock goes away."""
    if not cloud.batch_state_machine_arn:
        return
    running = cloud.sfn.list_executions(stateMachineArn=cloud.batch_state_machine_arn, statusFilter="RUNNING")
    for execution in running.get("executions", []):
        with contextlib.suppress(Exception):
            wait(cloud, execution["name"], timeout=timeout)


def unfinished_batches(cloud: LocalCloud) -> list[str]:
    """Batches of the state directory that have not ended and that no live process runs."""
    from longform_core.runtime import get_services

    root = cloud.store_dir.bucket_dir / "batch-runs"
    if not root.is_dir():
        return []
    store = get_services().batches
    found = []
    for entry in sorted(root.iterdir()):
        batch_id = unquote(entry.name)
        if not (entry / "batch.json").is_file() or cloud.store_dir.leases.holder(batch_id):
            continue
        with contextlib.suppress(ValueError):  # an unreadable batch.json: left as it is
            got = store.find_batch(batch_id)
            if got is not None and not got[0].terminal:
                found.append(batch_id)
    return found


def resume_batch(cloud: LocalCloud, batch_id: str) -> str:
    """Run an unfinished batch again as a batch: a new execution of the batch workflow (its split is
    safe to run again, each line's execution continues the line from its last commit, a line that
    has ended only replays its end), so its cap holds, its output is written and its status ends."""
    from longform_core.runtime import get_services

    executions = get_services().require_batch_executions()
    arn, _ = executions.start(batch_id, json.dumps({"batch_id": batch_id}))
    return arn
