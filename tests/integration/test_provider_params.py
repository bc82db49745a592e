"""``provider_params`` through the real ASL: a server that penalises repetition over each request's
own tokens (llama-cpp-python 0.3.36, ``repeat_penalty`` 1.1 unless asked otherwise) parts from the
uncapped answer at every seam; a job asking ``repeat_penalty`` 1.0 in every request, chat and raw
completion alike, reproduces it (tests/conformance/test_llama_cpp_python.py proves it on the real
server)."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import CloudFactory, expected, run_job

REQUEST: dict[str, Any] = {"prompt": "Write a long story about the sea. " * 40, "max_tokens_per_request": 400}
GREEDY = {"repeat_penalty": 1.0}


@pytest.mark.parametrize("completions", ["off", "chatml"])
def test_a_job_asking_repeat_penalty_1_reproduces_the_uncapped_answer(
    make_cloud: CloudFactory, emulator: Any, completions: str
) -> None:
    emulator.configure(repeat_penalty=1.1, completions=completions)
    request = {**REQUEST, "provider_params": GREEDY}
    with make_cloud() as cloud:
        result, desc, output = run_job(cloud, request)
        assert desc["status"] == "SUCCEEDED" and result.status == "succeeded", result.error
        assert result.chunks > 2
        assert output == expected(REQUEST, emulator).answer
    served = [r for r in emulator.requests if r["status"] == 200]
    assert served and all(r["repeat_penalty"] == 1.0 for r in served), served


def test_without_it_the_text_parts_from_the_uncapped_answer_at_the_first_seam(
    make_cloud: CloudFactory, emulator: Any
) -> None:
    emulator.configure(repeat_penalty=1.1)
    with make_cloud() as cloud:
        result, desc, output = run_job(cloud, REQUEST)
        assert desc["status"] == "SUCCEEDED", desc
        answer = expected(REQUEST, emulator).answer
        chunk = cloud.store.get_chunk(result.job_id, 0)
        assert output[: len(chunk.text)] == answer[: len(chunk.text)]  # the first request is the same
        assert output != answer
    assert all(r["repeat_penalty"] == 1.1 for r in emulator.requests if r["status"] == 200)
