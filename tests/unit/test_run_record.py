"""``runs/{id}.json`` as a typed record (``local/run_record.py``)."""

from __future__ import annotations

import json
from pathlib import Path

from longform_core.request import DEFAULT_MAX_TOKENS_PER_REQUEST

from longform.local.providers import Provider, ProviderOptions
from longform.local.run_record import RunRecord
from longform.local.state import StateDir

SERVER = Provider("server", "http://lan:8080/v1", "secret-key", "m", "the server at http://lan:8080/v1")


def test_a_record_round_trips_through_the_state_directory(tmp_path: Path) -> None:
    chosen = ProviderOptions(base_url=SERVER.base_url, api_key_env="LAN_KEY", emulator_settings={"seed": 3})
    record = RunRecord.started(
        SERVER, chosen, max_tokens_per_request=4096, context_length=32768, stream=False
    )
    state = StateDir(tmp_path)
    state.save_run("j1", record)
    assert state.load_run("j1") == record
    raw = (tmp_path / "runs" / "j1.json").read_text(encoding="utf-8")
    assert "secret-key" not in raw  # the variable's name, never the key
    assert json.loads(raw)["api_key_env"] == "LAN_KEY"


def test_a_record_written_before_the_model_still_loads(tmp_path: Path) -> None:
    old = {
        "provider": "emulator",
        "base_url": None,
        "model": "longform/emulated-writer",
        "api_key_env": None,
        "emulator_settings": {"token_delay": 0.01},
        "max_tokens_per_request": 1000,
        "context_length": None,
        "chunk_timeout": None,
        "deadline_margin": 30.0,
        "stream": None,
        "started_at": "2026-12-01T10:00:00+00:00",
    }
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "old.json").write_text(json.dumps(old))
    record = StateDir(tmp_path).load_run("old")
    assert record is not None
    assert (record.provider, record.max_tokens_per_request) == ("emulator", 1000)
    assert record.emulator_settings == {"token_delay": 0.01}


def test_no_record_or_an_unreadable_one_is_none(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    assert state.load_run("absent") is None
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "torn.json").write_text('{"provider": "emu')
    (tmp_path / "runs" / "alien.json").write_text('{"provider": "someone-else"}')
    assert state.load_run("torn") is None and state.load_run("alien") is None


def test_the_per_request_cap_has_one_default() -> None:
    assert RunRecord(provider="emulator").max_tokens_per_request == DEFAULT_MAX_TOKENS_PER_REQUEST


def test_resume_takes_what_was_not_given_from_the_record() -> None:
    record = RunRecord(
        provider="server",
        base_url=SERVER.base_url,
        model="m",
        api_key_env="LAN_KEY",
        emulator_settings={"seed": 1},
    )
    merged = record.provider_options(ProviderOptions(emulator_settings={"token_delay": 0.5}))
    assert (merged.emulator, merged.base_url, merged.model, merged.api_key_env) == (
        False,
        SERVER.base_url,
        "m",
        "LAN_KEY",
    )
    assert merged.emulator_settings == {"seed": 1, "token_delay": 0.5}
    # --emulator given on resume chooses anew: the recorded server and its key variable go
    anew = record.provider_options(ProviderOptions(emulator=True))
    assert (anew.emulator, anew.base_url, anew.api_key_env, anew.model) == (True, None, None, "m")


def test_the_record_is_built_from_the_options_and_resume_takes_each_setting_back(tmp_path: Path) -> None:
    """One declaration of the recorded settings (``RunSettings``): a run's options make its record,
    and a resume given none of them gets each back from it."""
    from longform.local.run_options import RunOptions, run_record, with_recorded_options
    from longform.local.run_record import RunSettings

    given = {"context_length": 8192, "chunk_timeout": 60.0, "deadline_margin": 12.5, "stream": False}
    options = RunOptions(request={"prompt": "p"}, out=tmp_path / "a.md", **given)
    record = run_record(options, SERVER, 2048, "j1")
    assert set(RunSettings.model_fields) == {"max_tokens_per_request", *given}
    assert record.model_dump(include=set(RunSettings.model_fields)) == {
        "max_tokens_per_request": 2048,
        **given,
    }
    assert record.out == str(tmp_path / "a.md") and record.base_url == SERVER.base_url
    resumed = with_recorded_options(RunOptions(request={}), record)
    assert {name: getattr(resumed, name) for name in RunSettings.model_fields} == {
        "max_tokens_per_request": 2048,
        **given,
        "deadline_margin": 30.0,  # always given (its default): the one of this process stands
    }
    assert resumed.out == tmp_path / "a.md" and resumed.provider.base_url == SERVER.base_url
    mine = with_recorded_options(RunOptions(request={}, context_length=4096, out=tmp_path / "b.md"), record)
    assert (mine.context_length, mine.out, mine.chunk_timeout) == (4096, tmp_path / "b.md", 60.0)
