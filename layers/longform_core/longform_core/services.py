"""The ports the use cases talk through, and ``Services``: everything a use case needs, passed in.

Adapters implement the ports (``provider.ProviderClient``, ``executions.StepFunctionsExecutions``,
``notify.CompletionPublisher``, Powertools ``Metrics``); ``runtime.py`` is the composition root
that builds them once per Lambda container; tests and the local cloud build their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .batch.store import BatchStore
from .config import Settings
from .job_store import JobStore
from .models import JobResult

if TYPE_CHECKING:  # the provider module imports httpx, which only the chunk function needs
    from .draft import StreamProgress
    from .provider import StreamOutcome


class StreamingProvider(Protocol):
    """One chat completion (``ProviderClient``)."""

    def chat(
        self,
        body: dict[str, Any],
        *,
        deadline: float,
        stream: bool = True,
        on_progress: Callable[[StreamProgress], None] | None = None,
    ) -> StreamOutcome:
        """``on_progress`` sees the text so far after each streamed delta (``draft.Checkpointer``)."""
        ...


class MetricsSink(Protocol):
    """Powertools ``Metrics`` (or anything with ``add_metric``)."""

    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


class Publisher(Protocol):
    """The completion event (``CompletionPublisher``)."""

    def publish(self, result: JobResult) -> None: ...


class BatchEventPublisher(Protocol):
    """The batch's completion event (``notify.BatchFinishedPublisher``)."""

    def publish_batch(self, detail: dict[str, Any], *, resources: list[str]) -> None: ...


class Executions(Protocol):
    """The workflow's executions (``StepFunctionsExecutions``)."""

    def arn_for(self, name: str) -> str: ...

    def start(self, name: str, input_json: str) -> tuple[str, bool]:
        """Start ``name``; returns its ARN and False when an execution of that name already existed."""
        ...

    def stop(self, execution_arn: str, *, error: str, cause: str) -> None: ...

    def recent(self, limit: int, next_token: str | None = None) -> tuple[list[str], str | None]:
        """Names of the most recent executions, newest first, and the next page's token."""
        ...


@dataclass
class Services:
    """Everything the use cases need, created once per container and passed in."""

    settings: Settings
    store: JobStore
    provider: StreamingProvider
    clock: Callable[[], float] = time.monotonic
    publisher: Publisher | None = None  # the completion event (finalize)
    executions: Executions | None = None  # the state machine (submit, cancel)
    batch_executions: Executions | None = None  # the batch workflow (batch/)
    batch_publisher: BatchEventPublisher | None = None  # "Batch Finished"
    # a batch's objects (batch-runs/), in the jobs bucket beside ``store``; runtime.py builds both
    # from one S3 client, and Services built without it (tests) get one over ``store``'s client
    batches: BatchStore = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.batches is None:
            self.batches = BatchStore(self.store.s3, self.store.bucket)

    def require_batch_executions(self) -> Executions:
        """The batch workflow, or a one-line error naming the missing setting."""
        if self.batch_executions is None:
            raise RuntimeError(
                "BATCH_STATE_MACHINE_ARN is not set: this function cannot start or stop batches"
            )
        return self.batch_executions

    def require_executions(self) -> Executions:
        """The state machine, or a one-line error naming the missing setting."""
        if self.executions is None:
            raise RuntimeError("STATE_MACHINE_ARN is not set: this function cannot start or stop jobs")
        return self.executions
