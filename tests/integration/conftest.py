"""Whole jobs through the real ASL: moto's Step Functions interpreter, moto S3, handlers in-process,
the emulator on loopback."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from longform_core.style_probe import PROBE_MAX_TOKENS

from longform.emulator.model import canonical_output
from longform.emulator.server import EmulatorServer, EmulatorSettings
from longform.local.aws import quiet_moto_logs
from longform.local.cloud import CloudConfig, LocalCloud

WRITER = "longform/emulated-writer"


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorSettings()) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_emulator(emulator: EmulatorServer) -> None:
    emulator.reset()


CloudFactory = Callable[..., contextlib.AbstractContextManager[LocalCloud]]


@pytest.fixture
def make_cloud(emulator: EmulatorServer) -> CloudFactory:
    @contextlib.contextmanager
    def factory(**overrides: Any) -> Iterator[LocalCloud]:
        config = CloudConfig(provider_base_url=emulator.base_url, model=WRITER, retry_sleep_scale=0.001)
        for key, value in overrides.items():
            setattr(config, key, value)
        with quiet_moto_logs(), LocalCloud(config) as cloud:
            yield cloud

    return factory


def answer_requests(emulator: EmulatorServer) -> list[dict[str, Any]]:
    """The chat requests that asked for the answer (answered 200): not the style probe, the one small
    greedy request (``PROBE_MAX_TOKENS``) that checks a prefill style before it is learned."""
    return [r for r in emulator.requests if r["status"] == 200 and not is_probe(r)]


def is_probe(request: dict[str, Any]) -> bool:
    return request.get("max_tokens") == PROBE_MAX_TOKENS


def expected(request: dict[str, Any], emulator: EmulatorServer, *, model: str = WRITER) -> Any:
    """What an uncapped model says to this request (answer and reasoning)."""
    messages = request.get("messages") or [{"role": "user", "content": request["prompt"]}]
    return canonical_output(
        messages, model=request.get("model", model), seed=request.get("seed"), settings=emulator.settings
    )


def run_job(cloud: LocalCloud, request: dict[str, Any], **kwargs: Any) -> tuple[Any, dict[str, Any], str]:
    """Submit, wait, and return (result, execution description, output text)."""
    job = cloud.submit(request, **kwargs)
    desc = cloud.wait(job.job_id, timeout=120)
    result = cloud.store.get_result(job.job_id)
    assert result is not None, f"no result.json; execution {desc['status']}: {desc.get('cause')}"
    output = cloud.store.get_text(result.output_key)
    assert output is not None
    return result, desc, output


def freeze_after_first_chunk(state: Path, frozen: Path) -> Callable[[LocalCloud], None]:
    """An ``on_cloud`` hook for ``runner.run``: once the job's first chunk is committed, the state
    directory is copied to ``frozen`` as a process that died there would have left it (once)."""

    def install(cloud: LocalCloud) -> None:
        def hook(function: str, event: dict[str, Any]) -> None:
            if function == "GenerateChunkFunction" and not frozen.exists():
                manifest = cloud.store.find_manifest(event["job_id"])
                if manifest is not None and manifest.chunks == 1:
                    shutil.copytree(state, frozen, ignore=shutil.ignore_patterns("lock"))

        cloud.fault_hook = hook

    return install


def _burn(stop: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    while not stop.is_set():
        sum(i * i for i in range(20_000))


@pytest.fixture
def cpu_load() -> Iterator[None]:
    """Every core busy (two busy processes per core) for the length of the test (the stop tests:
    ``test_stops_promptly.py``)."""
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    burners = [
        context.Process(target=_burn, args=(stop,), daemon=True) for _ in range(2 * (os.cpu_count() or 2))
    ]
    for burner in burners:
        burner.start()
    try:
        yield
    finally:
        stop.set()
        for burner in burners:
            burner.join(timeout=10)
            if burner.is_alive():
                burner.kill()
