"""The `llm` CLI (pinned), unchanged, with a model entry pointing at ``longform serve``: it prints an
answer longer than the provider's per-request cap, the whole uncapped answer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from longform.local.serve import LocalApi

from .conftest import WRITER, CloudFactory, answer_requests, expected

pytestmark = pytest.mark.integration

CAP = 300  # the emulator's per-request cap
PROMPT = "Write about lighthouse keepers. [emulator answer_tokens=1200]"


def llm_command() -> list[str]:
    exe = shutil.which("llm", path=str(Path(sys.executable).parent))
    assert exe is not None, "the llm CLI is a dev dependency (pyproject.toml)"
    return [exe]


@pytest.fixture
def llm_home(make_cloud: CloudFactory, emulator, tmp_path: Path) -> Iterator[dict[str, str]]:
    emulator.configure(cap=CAP)
    with make_cloud() as cloud, LocalApi(cloud, port=0) as api:
        (tmp_path / "extra-openai-models.yaml").write_text(
            f'- model_id: longform\n  model_name: {WRITER}\n  api_base: "{api.url}/v1"\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLM_"))}
        yield {**env, "LLM_USER_PATH": str(tmp_path)}


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_llm_prints_the_whole_answer_past_the_cap(llm_home, emulator, stream: bool) -> None:
    args = [*llm_command(), "-m", "longform", PROMPT, *([] if stream else ["--no-stream"])]
    done = subprocess.run(args, env=llm_home, capture_output=True, text=True, timeout=240, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr
    want = expected({"prompt": PROMPT}, emulator).answer
    assert done.stdout.rstrip("\n") == want.rstrip("\n")
    assert len(want.split()) > CAP
    assert len(answer_requests(emulator)) == 4  # 1,200 tokens in requests of at most 300
