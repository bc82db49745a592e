"""``longform run``: the local runner's contract (later issues and the benchmarks depend on it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from longform.cli import main
from longform.emulator.model import uncapped_answer

from .conftest import freeze_after_first_chunk

pytestmark = pytest.mark.integration


def test_run_json_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    prompt = "Write a 3,000-word essay on tide mills."
    out = tmp_path / "essay.md"
    code = main(["run", "--prompt", prompt, "--max-tokens-per-request", "1000", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0
    summary = json.loads(captured.out.strip().splitlines()[-1])
    for key in (
        "status",
        "finish_reason",
        "chunks",
        "prompt_tokens",
        "output_tokens",
        "state_transitions",
        "output_path",
    ):
        assert key in summary
    assert summary["status"] == "succeeded"
    assert summary["finish_reason"] == "stop"
    assert summary["chunks"] == 3
    assert summary["output_tokens"] == 3000
    assert summary["state_transitions"] == 2 * 3 + 3
    assert summary["transitions_per_chunk"] == 2.0
    assert summary["output_path"] == str(out)
    text = out.read_text(encoding="utf-8")
    assert text == uncapped_answer([{"role": "user", "content": prompt}], model=summary["model"])
    assert "chunk   3" in captured.err  # progress, one line per chunk


def test_run_request_file_context_exhausted_exits_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    request = tmp_path / "req.json"
    request.write_text(json.dumps({"messages": [{"role": "user", "content": "Write a 90,000-word saga."}]}))
    code = main(
        [
            "run",
            "--request",
            str(request),
            "--max-tokens-per-request",
            "4000",
            "--context-length",
            "9000",
            "--out",
            str(tmp_path / "saga.md"),
            "--json",
        ]
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    assert summary["status"] == "context_exhausted"
    assert summary["output_tokens"] >= 0.99 * (9000 - summary["prompt_tokens"])


def test_run_bad_request_exits_2_naming_the_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = tmp_path / "bad.json"
    request.write_text(json.dumps({"messages": [], "max_chunks": 0, "colour": "blue"}))
    code = main(["run", "--request", str(request), "--json"])
    captured = capsys.readouterr()
    assert code == 2
    assert "messages" in captured.err and "max_chunks" in captured.err and "colour" in captured.err
    payload = json.loads(captured.out.strip().splitlines()[-1])
    assert payload["status"] == "invalid"
    assert {p["field"] for p in payload["problems"]} >= {"messages", "max_chunks", "colour"}


@pytest.mark.parametrize(
    ("body", "field"),
    [('{"prompt": "Write", "stop": ["\\ud800"]}', "stop[0]"), ('{"prompt": "Write \\udcff"}', "prompt")],
    ids=["stop", "prompt"],
)
def test_run_a_lone_surrogate_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, field: str
) -> None:
    request = tmp_path / "surrogate.json"
    request.write_text(body)
    code = main(["run", "--request", str(request), "--json"])
    captured = capsys.readouterr()
    assert code == 2
    payload = json.loads(captured.out.strip().splitlines()[-1])
    assert payload["status"] == "invalid"
    assert [p["field"] for p in payload["problems"]] == [field]
    assert "surrogate" in captured.err


def test_drop_command_runs_the_drop_folder_locally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    prompt_file = tmp_path / "kelp.txt"
    prompt_file.write_text("Write a 1,200-word note on kelp forests.")
    out = tmp_path / "results"
    assert main(["drop", str(prompt_file), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["kelp.json", "kelp.md"]
    result = json.loads((out / "kelp.json").read_text())
    assert result["status"] == "succeeded"
    assert result["output_tokens"] == 1200
    model = result["model"]
    assert (out / "kelp.md").read_text() == uncapped_answer(
        [{"role": "user", "content": "Write a 1,200-word note on kelp forests."}], model=model
    )
    bad = tmp_path / "bad.json"
    bad.write_text('{"prompt": ""}')
    capsys.readouterr()
    assert main(["drop", str(bad), "--out", str(out)]) == 2  # the drop folder's check, before anything starts
    assert "  - prompt: must not be empty" in capsys.readouterr().err
    assert not (out / "bad.error.json").exists()


# ---- issue 10: one-line errors, explicit provider choice, exit codes, local state ----------------

PROMPT_3000 = "Write about kelp [emulator answer_tokens=3000]"


def last_line_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_a_budget_stop_exits_3_and_says_the_text_is_cut(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    out = tmp_path / "kelp.md"
    args = [
        "run",
        "--emulator",
        "--prompt",
        PROMPT_3000,
        "--max-tokens-per-request",
        "1000",
        "--max-chunks",
        "2",
    ]
    state = ["--state-dir", str(tmp_path / "state")]
    code = main([*args, "--out", str(out), *state])
    captured = capsys.readouterr()
    assert code == 3
    assert "incomplete: the max_chunks budget was reached" in captured.out
    assert (
        out.read_text() == uncapped_answer([{"role": "user", "content": PROMPT_3000}])[: len(out.read_text())]
    )
    # every view of the job says the same: incomplete (max_chunks), never succeeded
    assert main(["list", "--json", *state]) == 0
    (listed,) = last_line_json(capsys.readouterr().out)
    assert (listed["status"], listed["incomplete_reason"]) == ("incomplete", "max_chunks")
    assert main(["list", *state]) == 0
    assert "incomplete (max_chunks)" in capsys.readouterr().out
    assert main(["show", listed["job_id"], "--json", *state]) == 0
    shown = last_line_json(capsys.readouterr().out)
    assert (shown["job"]["status"], shown["job"]["incomplete_reason"]) == ("incomplete", "max_chunks")
    assert (shown["result"]["status"], shown["result"]["incomplete_reason"]) == ("incomplete", "max_chunks")
    assert shown["result"]["stop_detail"].startswith("the max_chunks budget (2 chunks) was reached")
    assert main(["show", listed["job_id"], *state]) == 0
    assert "max_chunks: the max_chunks budget (2 chunks) was reached" in capsys.readouterr().out


def test_prompt_from_stdin_and_the_answer_to_stdout(tmp_path: Path, capsys, monkeypatch) -> None:
    import io

    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(PROMPT_3000))
    code = main(["run", "--emulator", "--prompt", "-", "--out", "-", "--max-tokens-per-request", "1000"])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out == uncapped_answer([{"role": "user", "content": PROMPT_3000}]) + "\n"
    assert "status" in captured.err and "done" in captured.err  # the summary goes to stderr
    assert not (tmp_path / "-").exists()


def test_prompt_file(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text(PROMPT_3000)
    out = tmp_path / "a.md"
    assert main(["run", "--emulator", "--prompt-file", str(prompt_file), "--out", str(out), "--quiet"]) == 0
    assert out.read_text() == uncapped_answer([{"role": "user", "content": PROMPT_3000}])
    assert capsys.readouterr().out == ""  # --quiet


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["run", "--prompt", "x", "--out", "x.json"],
            "--out x.json would be overwritten by the job's own result",
        ),
        (["run", "--request", "nope.json"], "--request nope.json: no such file"),
        (["run", "--prompt-file", "nope.txt"], "--prompt-file nope.txt: no such file"),
        (["run"], "give the prompt"),
        (["run", "--prompt", "x", "--out", "."], "--out . is a directory"),
        (["drop", "README.md", "--name", "a/../b"], "cannot name an object"),
        (["drop", "nope.json"], "nope.json: No such file or directory"),
        (["resume", "0123456789abcdef"], "no job 0123456789abcdef in"),
        (["show", "0123456789abcdef"], "no job 0123456789abcdef in"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_anything_starts(
    args: list[str], expected: str, capsys, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert expected in one_line_error(capsys.readouterr().err)


def test_a_mistyped_option_is_named_with_a_suggestion(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--promt", "x"])
    assert exit_.value.code == 2
    assert "--promt (did you mean --prompt?)" in capsys.readouterr().err


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("longform ")


def test_every_option_has_help(capsys) -> None:
    from longform.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = [
        f"{name} {action.option_strings}"
        for name, sub in subparsers.choices.items()
        for action in sub._actions
        if action.option_strings and not action.help and action.dest != "help"
    ]
    assert missing == []


def test_an_unreachable_provider_fails_in_one_line(capsys, monkeypatch) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        code = main(["run", "--base-url", f"http://127.0.0.1:{port}/v1", "--model", "m", "--prompt", "x"])
    assert code == 1
    line = one_line_error(capsys.readouterr().err)
    assert "cannot reach the provider" in line and "connection refused" in line


def test_base_url_without_model_lists_the_servers_models(capsys, emulator) -> None:
    code = main(["run", "--base-url", emulator.base_url, "--prompt", "x"])
    err = capsys.readouterr().err
    assert code == 2
    assert "serves 3 models; choose one with --model" in err
    assert "longform/emulator-reasoning" in err


def test_the_api_client_without_a_server_is_one_line(capsys) -> None:
    for args in (["submit", "--prompt", "x"], ["status", "abc"], ["output", "abc"], ["cancel", "abc"]):
        assert main([*args, "--api", "http://127.0.0.1:9"]) == 1
        line = one_line_error(capsys.readouterr().err)
        assert "cannot reach the API at http://127.0.0.1:9" in line and "longform serve" in line


def test_serve_on_a_busy_port_is_one_line(capsys) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert main(["serve", "--emulator", "--port", str(port)]) == 1
    assert f"port {port} on 127.0.0.1 is in use" in one_line_error(capsys.readouterr().err)


def test_list_show_and_resume_of_a_finished_job(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    state = tmp_path / "state"
    out = tmp_path / "kelp.md"
    args = ["--state-dir", str(state)]
    assert main(["run", "--emulator", "--prompt", PROMPT_3000, "--out", str(out), "--json", *args]) == 0
    job_id = last_line_json(capsys.readouterr().out)["job_id"]
    assert main(["list", *args]) == 0
    listing = capsys.readouterr().out
    assert job_id in listing and "succeeded" in listing and "Write about kelp" in listing
    assert main(["show", job_id, "--json", *args]) == 0
    shown = last_line_json(capsys.readouterr().out)
    assert shown["job"]["status"] == "succeeded" and shown["result"]["output_tokens"] == 3000
    again = tmp_path / "again.md"
    assert main(["resume", job_id, "--out", str(again), *args]) == 0  # nothing to do: the result
    assert again.read_text() == out.read_text()
    assert "already ended" in capsys.readouterr().err


def test_a_job_survives_its_process_and_resumes_from_disk(tmp_path: Path, capsys, monkeypatch) -> None:
    """A job whose process died mid-way (here: its state copied while it ran) resumes from disk."""
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    state, frozen = tmp_path / "state", tmp_path / "frozen"

    from longform.local.providers import ProviderOptions
    from longform.local.runner import RunOptions, run

    run(
        RunOptions(
            request={"prompt": PROMPT_3000},
            provider=ProviderOptions(emulator=True),
            max_tokens_per_request=1000,
            out=tmp_path / "first.md",
            state_dir=state,
        ),
        on_cloud=freeze_after_first_chunk(state, frozen),
    )
    assert frozen.is_dir()
    job_id = next((frozen / "bucket" / "jobs").iterdir()).name
    out = tmp_path / "resumed.md"
    assert main(["resume", job_id, "--out", str(out), "--state-dir", str(frozen), "--json"]) == 0
    summary = last_line_json(capsys.readouterr().out)
    assert summary["chunks"] == 3 and summary["status"] == "succeeded"
    assert out.read_text() == (tmp_path / "first.md").read_text()
    assert out.read_text() == uncapped_answer([{"role": "user", "content": PROMPT_3000}])


def test_stream_with_the_answer_on_stdout_prints_it_once(capsys, monkeypatch) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    code = main(["run", "--emulator", "--prompt", PROMPT_3000, "--stream", "--out", "-"])
    out = capsys.readouterr().out
    answer = uncapped_answer([{"role": "user", "content": PROMPT_3000}])
    assert code == 0 and out == answer + "\n"


def test_serve_resumes_only_jobs_of_its_own_provider() -> None:
    from longform.commands.serve import resumable_here
    from longform.local.providers import Provider
    from longform.local.run_record import RunRecord

    def record(raw: dict[str, object]) -> RunRecord:
        return RunRecord.model_validate(raw)  # as runs/{id}.json holds it

    emulator = Provider("emulator", "http://127.0.0.1:1/v1", None, "m", "the emulator")
    server = Provider("server", "http://lan:8080/v1", None, "m", "the server")
    assert resumable_here(None, server)  # submitted through the API: serve's own
    assert resumable_here(record({"provider": "emulator", "base_url": None}), emulator)
    assert not resumable_here(record({"provider": "emulator", "base_url": None}), server)
    assert resumable_here(record({"provider": "server", "base_url": "http://lan:8080/v1"}), server)
    assert not resumable_here(record({"provider": "server", "base_url": "http://other:8080/v1"}), server)
    assert not resumable_here(record({"provider": "deepinfra", "base_url": "x"}), emulator)


def test_an_unreadable_manifest_does_not_stop_the_local_cloud(tmp_path: Path, make_cloud) -> None:
    state = tmp_path / "state"
    (state / "bucket" / "jobs" / "torn").mkdir(parents=True)
    (state / "bucket" / "jobs" / "torn" / "manifest.json").write_text("")
    with make_cloud(state_dir=state) as cloud:
        assert cloud.unfinished_jobs() == []


def test_the_local_handlers_print_no_metrics_whatever_the_environment(make_cloud, capfd, monkeypatch) -> None:
    """stdout is the CLI's (``--out -`` writes the answer there): no EMF metrics from the local
    handlers, even when ``POWERTOOLS_METRICS_DISABLED`` is not set when they flush (a thread that
    outlives its local cloud), and nothing accumulated is printed later either."""
    with make_cloud() as cloud:
        job = cloud.submit({"prompt": "Owls. [emulator answer_tokens=300]"})
        cloud.wait(job.job_id)
        monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
        job = cloud.submit({"prompt": "Herons. [emulator answer_tokens=300]"})
        cloud.wait(job.job_id)
        assert cloud.store.get_result(job.job_id).status == "succeeded"
    assert capfd.readouterr().out == ""
