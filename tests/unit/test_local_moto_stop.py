"""The local moto seam: ``StopExecution`` of an execution whose worker thread has not yet built
its evaluation environment stops it once it has, instead of failing inside moto."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from longform.local.aws import stop_after_the_worker_starts


def test_a_stop_waits_for_the_worker_to_start() -> None:
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    stopped: list[dict[str, Any]] = []

    class Env:
        def set_stop(self, **kwargs: Any) -> None:
            stopped.append(kwargs)

    worker = ExecutionWorker.__new__(ExecutionWorker)
    worker.env = None
    ready = threading.Event()

    def start_later() -> None:
        ready.wait()
        worker.env = Env()  # what the worker thread does first when it runs

    with contextlib.ExitStack() as stack:
        stop_after_the_worker_starts(stack)
        thread = threading.Thread(target=start_later)
        thread.start()
        stopper = threading.Thread(target=lambda: worker.stop(stop_date=None, error="E", cause="C"))
        stopper.start()
        ready.set()
        stopper.join(30)
        thread.join(30)
    assert stopped == [{"stop_date": None, "cause": "C", "error": "E"}]
