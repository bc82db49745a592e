"""Draft checkpoints (``draft.py``): the policy, the checkpointer on a fake clock, the store, and the
chunk use case committing, ignoring or discarding a draft; readers (output, status) showing it.

No test here reads the wall clock: time is a ``FakeClock`` the scripted providers advance."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from longform_core.chunk import ChunkTaskInput, ChunkTaskOutput, generate_chunk
from longform_core.config import Settings
from longform_core.draft import Checkpointer, Draft, DraftPolicy, StreamProgress
from longform_core.finalize import FinalizeTaskInput, finalize
from longform_core.job_store import JobKeys, JobStore
from longform_core.models import Manifest
from longform_core.output import read_output
from longform_core.provider import StreamOutcome
from longform_core.request import parse_request
from longform_core.services import Services
from longform_core.sse import Usage
from longform_core.status import get_job

JOB = "job1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: float = 1_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ListSink:
    """A ``DraftSink`` that keeps every draft (or raises, to stand for S3 failing)."""

    def __init__(self, error: Exception | None = None):
        self.drafts: list[Draft] = []
        self.error = error
        self.calls = 0

    def put_draft(self, draft: Draft) -> None:
        self.calls += 1
        if self.error is not None:
            raise self.error
        self.drafts.append(draft)


def as_is(content: str, reasoning: str, first_delta: str | None) -> tuple[str, str]:
    return content, reasoning


def make_checkpointer(sink: Any, policy: DraftPolicy, clock: FakeClock, **overrides: Any) -> Checkpointer:
    values: dict[str, Any] = {
        "job_id": JOB,
        "index": 3,
        "base_etag": '"etag-3"',
        "prefill_style": "assistant",
        "prefill_trim": False,
        "check_start": False,
        "max_tokens": 16_384,
        "view": as_is,
        "clock": clock,
    }
    values.update(overrides)
    return Checkpointer(sink, policy, **values)


def feed(checkpoints: Checkpointer, clock: FakeClock, *, tokens: int, per_second: float, attempt: int = 1):
    """``tokens`` one-token deltas at ``per_second`` from the clock's current time (exact times:
    start + n / rate, so no float drift decides whether an interval has passed)."""
    start = clock.now
    content: list[str] = []
    for n in range(1, tokens + 1):
        content.append(f"w{n} ")
        clock.now = start + n / per_second
        checkpoints(StreamProgress(content, deltas=n, first_delta=content[0], attempt=attempt, model="m"))


# ---- the policy ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "tokens", "due"),
    [
        (0.0, 0, False),  # neither
        (4.9, 10_000, False),  # tokens enough, too soon
        (60.0, 1_999, False),  # long enough, too few tokens
        (5.0, 2_000, True),  # both, exactly at the bounds
        (30.0, 50_000, True),  # both, well past
    ],
)
def test_policy_is_due_only_when_both_the_interval_and_the_tokens_are_there(
    seconds: float, tokens: int, due: bool
) -> None:
    policy = DraftPolicy(interval_seconds=5.0, min_tokens=2_000)
    assert policy.due(seconds_since=seconds, tokens_since=tokens) is due


def test_policy_off_is_never_due_and_zero_bounds_are_always_due() -> None:
    off = DraftPolicy(interval_seconds=0.0, min_tokens=0, enabled=False)
    assert not off.due(seconds_since=1e9, tokens_since=10**9)
    every_delta = DraftPolicy(interval_seconds=0.0, min_tokens=0)
    assert every_delta.due(seconds_since=0.0, tokens_since=0)
    assert DraftPolicy() == DraftPolicy(interval_seconds=5.0, min_tokens=2_000, enabled=True)


def test_settings_build_the_policy_from_the_environment() -> None:
    env = {
        "JOBS_BUCKET": "b",
        "DRAFT_CHECKPOINTS": "false",
        "DRAFT_INTERVAL_SECONDS": "0.5",
        "DRAFT_MIN_TOKENS": "100",
    }
    assert Settings.from_env(env).draft_policy == DraftPolicy(0.5, 100, enabled=False)
    assert Settings.from_env({"JOBS_BUCKET": "b"}).draft_policy == DraftPolicy(5.0, 2_000, enabled=True)


# ---- the checkpointer on a fake clock --------------------------------------------------------------


@pytest.mark.parametrize(
    ("per_second", "interval", "expected"),
    [
        (100, 5.0, 12),  # the default interval: 12 PUTs a minute at most
        (1_000, 5.0, 12),  # a faster model does not write more often
        (1_000, 0.5, 120),
        (100, 7.0, 8),  # 60 / 7 = 8.6: floor
    ],
)
def test_a_minute_of_streaming_writes_at_most_60_over_interval_drafts(
    per_second: int, interval: float, expected: int
) -> None:
    sink, clock = ListSink(), FakeClock()
    checkpoints = make_checkpointer(sink, DraftPolicy(interval_seconds=interval, min_tokens=0), clock)
    feed(checkpoints, clock, tokens=60 * per_second, per_second=per_second)
    assert checkpoints.written == len(sink.drafts) == expected <= 60 / interval
    # evenly spaced: one every `interval` seconds of the stream
    spacing = per_second * interval
    assert [d.tokens for d in sink.drafts] == [round(spacing * k) for k in range(1, expected + 1)]


def test_a_slow_model_writes_once_per_min_tokens_whichever_comes_later() -> None:
    sink, clock = ListSink(), FakeClock()
    checkpoints = make_checkpointer(sink, DraftPolicy(interval_seconds=5.0, min_tokens=2_000), clock)
    feed(checkpoints, clock, tokens=6_500, per_second=10)  # 650 s: the token bound is the later one
    assert [d.tokens for d in sink.drafts] == [2_000, 4_000, 6_000]
    assert [d.sequence for d in sink.drafts] == [1, 2, 3]
    # and a fast model with the same policy: the interval is the later one
    fast_sink, fast_clock = ListSink(), FakeClock()
    fast = make_checkpointer(fast_sink, DraftPolicy(interval_seconds=5.0, min_tokens=2_000), fast_clock)
    feed(fast, fast_clock, tokens=12_000, per_second=1_000)  # 12 s
    assert [d.tokens for d in fast_sink.drafts] == [5_000, 10_000]


def test_a_draft_carries_the_attempt_its_text_and_the_view() -> None:
    sink, clock = ListSink(), FakeClock()

    def view(content: str, reasoning: str, first_delta: str | None) -> tuple[str, str]:
        return content.upper(), reasoning

    checkpoints = make_checkpointer(
        sink, DraftPolicy(interval_seconds=1.0, min_tokens=0), clock, view=view, check_start=True
    )
    feed(checkpoints, clock, tokens=30, per_second=10)
    first, *_, last = sink.drafts
    assert len(sink.drafts) == 3 and checkpoints.last == last
    assert (last.job_id, last.index, last.base_etag, last.prefill_style) == (JOB, 3, '"etag-3"', "assistant")
    assert last.check_start and last.max_tokens == 16_384 and last.model == "m"
    assert last.content == "".join(f"w{n} " for n in range(1, 31)) and last.tokens == 30
    assert last.answer_text == last.content.upper() and last.first_delta == "w1 "
    assert first.attempt_id == last.attempt_id and first.started_at == last.started_at
    assert checkpoints.bytes_written == sum(len(d.content) for d in sink.drafts)
    assert checkpoints.failed == 0


def test_a_retry_inside_the_client_restarts_the_token_count() -> None:
    sink, clock = ListSink(), FakeClock()
    checkpoints = make_checkpointer(sink, DraftPolicy(interval_seconds=0.0, min_tokens=1_000), clock)
    feed(checkpoints, clock, tokens=1_500, per_second=100)
    assert [d.tokens for d in sink.drafts] == [1_000]
    # the client's second attempt streams from token 1 again: its own 1,000th token is due, not
    # the 2,000th (which a count carried over from attempt 1 would wait for)
    feed(checkpoints, clock, tokens=1_200, per_second=100, attempt=2)
    assert [d.tokens for d in sink.drafts] == [1_000, 1_000]
    assert sink.drafts[1].content.startswith("w1 w2 ") and sink.drafts[1].sequence == 2


def test_a_failing_sink_is_counted_and_never_raises() -> None:
    sink, clock = ListSink(error=RuntimeError("S3 is down")), FakeClock()
    checkpoints = make_checkpointer(sink, DraftPolicy(interval_seconds=1.0, min_tokens=0), clock)
    feed(checkpoints, clock, tokens=50, per_second=10)  # 5 due checkpoints, every write fails
    assert (checkpoints.written, checkpoints.failed, sink.calls) == (0, 5, 5)
    assert checkpoints.last is None and checkpoints.bytes_written == 0
    # a failed write still counts as the last attempt: the rate bound holds while S3 fails
    assert checkpoints.save(StreamProgress(["x"], deltas=1)) is None and checkpoints.failed == 6


def test_no_text_no_draft() -> None:
    sink, clock = ListSink(), FakeClock()
    checkpoints = make_checkpointer(sink, DraftPolicy(interval_seconds=0.0, min_tokens=0), clock)
    for n in range(1, 6):  # deltas that carried no text (a role-only delta, an empty string)
        checkpoints(StreamProgress([""] * n, "", deltas=n))
    assert checkpoints.save(StreamProgress("", "", deltas=5)) is None
    assert sink.calls == 0 and checkpoints.written == 0
    # reasoning alone is text
    checkpoints(StreamProgress([], ["Let me think"], deltas=6))
    assert [(d.content, d.reasoning) for d in sink.drafts] == [("", "Let me think")]


def test_stream_progress_joins_lazily_and_once() -> None:
    content = ["a", "b"]
    progress = StreamProgress(content, "r", deltas=2)
    assert (progress.content, progress.reasoning) == ("ab", "r")
    content.append("c")  # the accumulator's lists grow; a progress object is one moment
    assert progress.content == "ab"
    assert StreamProgress("plain", deltas=1).content == "plain"


# ---- the store -------------------------------------------------------------------------------------


def a_draft(**overrides: Any) -> Draft:
    values: dict[str, Any] = {
        "job_id": JOB,
        "index": 0,
        "base_etag": '"x"',
        "attempt_id": "dead-attempt",
        "sequence": 4,
        "prefill_style": "assistant",
        "max_tokens": 1_000,
        "content": "The lighthouse at Alexandria stood",
        "tokens": 6,
        "started_at": T0,
        "updated_at": T0.replace(second=12),
    }
    values.update(overrides)
    if "answer_text" not in overrides:
        values["answer_text"] = values["content"]
    return Draft(**values)


def test_store_round_trip_and_the_key(store: JobStore, s3: Any) -> None:
    assert JobKeys(JOB).draft(7) == "jobs/job1/drafts/000007.json"
    assert store.get_draft(JOB, 0) is None
    draft = a_draft(reasoning="thinking", first_delta="The", check_start=True)
    store.put_draft(draft)
    assert store.get_draft(JOB, 0) == draft
    assert store.get_draft(JOB, 1) is None  # another chunk's
    store.delete_draft(JOB, 0)
    assert store.get_draft(JOB, 0) is None
    store.delete_draft(JOB, 0)  # deleting what is not there is fine


@pytest.mark.parametrize("body", [b"{not json", b'{"job_id": "job1"}', b"[]"])
def test_an_unreadable_draft_is_no_draft(store: JobStore, s3: Any, body: bytes) -> None:
    s3.put_object(Bucket=store.bucket, Key=JobKeys(JOB).draft(0), Body=body)
    assert store.get_draft(JOB, 0) is None


# ---- the chunk use case ------------------------------------------------------------------------------


def outcome(
    content: str, finish: str | None = "length", *, completion: int = 5, prompt: int = 10
) -> StreamOutcome:
    return StreamOutcome(
        content=content,
        reasoning="",
        finish_reason=finish,
        ended_by="finished",
        usage=Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion),
        deltas=completion,
        model="m",
        attempts=1,
        ttft_seconds=0.01,
    )


class ScriptedProvider:
    """Answers each call with the next outcome; when it is a list of deltas, streams them (calling
    ``on_progress`` as ``ProviderClient`` does, the fake clock advancing ``seconds_per_delta``)."""

    def __init__(
        self, *script: StreamOutcome | list[str], clock: FakeClock | None = None, seconds_per_delta=0.1
    ):
        self.script = list(script)
        self.bodies: list[dict[str, Any]] = []
        self.clock = clock or FakeClock()
        self.seconds_per_delta = seconds_per_delta
        self.during: list[Any] = []  # what a callback saw mid-stream (see `watch`)
        self.watch: Any = None

    def chat(
        self, body: dict[str, Any], *, deadline: float, stream: bool = True, on_progress: Any = None
    ) -> StreamOutcome:
        self.bodies.append(body)
        if not self.script:
            raise AssertionError("the provider was not expected to be asked")
        item = self.script.pop(0)
        if isinstance(item, StreamOutcome):
            return item
        content: list[str] = []
        for n, piece in enumerate(item, 1):
            content.append(piece)
            self.clock.advance(self.seconds_per_delta)
            if on_progress is not None:
                on_progress(StreamProgress(content, deltas=n, first_delta=item[0], model="m"))
            if self.watch is not None:
                self.during.append(self.watch(n))
        return outcome("".join(content), "length", completion=len(item))


def make_services(store: JobStore, provider: ScriptedProvider, **settings: Any) -> Services:
    # a script answers in order, not as a model: no style probe
    return Services(
        settings=Settings(jobs_bucket=store.bucket, **{"prefill_probe": False, **settings}),
        store=store,
        provider=provider,
        clock=provider.clock,
    )


def start(store: JobStore, job_id: str = JOB, prompt: str = "Write about lighthouses.") -> str:
    store.put_request(job_id, parse_request({"prompt": prompt}))
    store.put_manifest(Manifest(job_id=job_id, model="m", reasoning_phase="start"))
    return job_id


def chunk(services: Services, job_id: str = JOB) -> ChunkTaskOutput:
    return generate_chunk(ChunkTaskInput(job_id=job_id), services, remaining_ms=lambda: 600_000)


FIRST = "Chapter one. The keepers of the light kept a log of every ship. "
# a server that ignored the prefill: the answer's opening (40 characters) again, then other words
# (not a prefix of the prefill, which would look like an echo cut short)
RESTART = FIRST[:40] + "pt the lamps lit all winter."


def test_a_streamed_chunk_checkpoints_then_its_commit_deletes_the_drafts(store: JobStore) -> None:
    words = [f"word{n} " for n in range(50)]
    provider = ScriptedProvider(words, seconds_per_delta=0.1)  # 5 s of streaming
    services = make_services(store, provider, draft_interval_seconds=1.0, draft_min_tokens=0)
    start(store)
    provider.watch = lambda n: (n, (d := store.get_draft(JOB, 0)) and (d.tokens, d.answer_text))
    out = chunk(services)
    assert out.finish_reason == "length"
    # mid-stream, the stored draft was the text up to the last checkpoint (every 10 deltas)
    assert provider.during[24] == (25, (20, "".join(words[:20])))
    assert provider.during[49] == (50, (50, "".join(words)))
    record = store.get_chunk(JOB, 0)
    assert record.draft_checkpoints == 5 and not record.from_draft
    assert record.text == "".join(words)
    assert store.get_draft(JOB, 0) is None  # superseded by the commit


def test_drafts_off_write_nothing(store: JobStore) -> None:
    provider = ScriptedProvider([f"w{n} " for n in range(50)])
    services = make_services(
        store, provider, draft_checkpoints=False, draft_interval_seconds=0.0, draft_min_tokens=0
    )
    start(store)
    provider.watch = lambda n: store.get_draft(JOB, 0)
    chunk(services)
    assert provider.during == [None] * 50
    assert store.get_chunk(JOB, 0).draft_checkpoints == 0


def commit_first_chunk(store: JobStore, **settings: Any) -> tuple[Manifest, str]:
    """Chunk 0 committed (``FIRST``); the manifest and ETag the next attempt will read."""
    start(store)
    chunk(make_services(store, ScriptedProvider(outcome(FIRST)), **settings))
    return store.get_manifest(JOB)


def test_an_attempt_commits_the_draft_a_dead_attempt_left_on_its_manifest_version(store: JobStore) -> None:
    _, etag = commit_first_chunk(store)
    # the dead attempt's server echoed the prefill (merged into its first delta, as llama.cpp does)
    new = "Some were wrecked anyway."
    store.put_draft(
        a_draft(
            index=1,
            base_etag=etag,
            content=FIRST + new,
            first_delta=FIRST + "Some",
            tokens=5,
            sequence=3,
            answer_text=new,
        )
    )
    out = chunk(make_services(store, ScriptedProvider()))  # the provider is not asked
    assert (out.finish_reason, out.chunk_index, out.chunks) == ("interrupted", 1, 2)
    record = store.get_chunk(JOB, 1)
    assert record.from_draft and record.finish_reason == "interrupted"
    assert record.text == new and record.echo == "stripped"  # the echo stripped as the dead attempt would
    assert (record.completion_tokens, record.draft_checkpoints, record.max_tokens) == (5, 3, 1_000)
    assert record.usage_estimated and "dead-attempt" in (record.detail or "")
    assert store.get_draft(JOB, 1) is None
    assert store.get_text(JobKeys(JOB).output) == FIRST + new
    # and the job goes on from the draft's text
    provider = ScriptedProvider(outcome(" The end.", "stop"))
    assert chunk(make_services(store, provider)).finish_reason == "stop"
    assert provider.bodies[0]["messages"][-1] == {"role": "assistant", "content": FIRST + new}


def test_a_draft_of_another_manifest_version_is_ignored(store: JobStore) -> None:
    commit_first_chunk(store)
    store.put_draft(a_draft(index=1, base_etag='"a-stale-version"', content="stale text from the past"))
    provider = ScriptedProvider(outcome("The fresh continuation."))
    out = chunk(make_services(store, provider))
    assert out.finish_reason == "length" and len(provider.bodies) == 1
    record = store.get_chunk(JOB, 1)
    assert not record.from_draft and record.text == "The fresh continuation."
    assert store.get_text(JobKeys(JOB).output) == FIRST + "The fresh continuation."
    assert store.get_draft(JOB, 1) is None  # cleaned up with the commit


def test_a_draft_showing_the_server_ignored_the_prefill_is_discarded(store: JobStore) -> None:
    _, etag = commit_first_chunk(store)
    # the dead attempt's server answered afresh: its text begins with the answer's opening again
    store.put_draft(a_draft(index=1, base_etag=etag, content=RESTART, check_start=True, tokens=9))
    provider = ScriptedProvider(outcome("The real continuation."))
    out = chunk(make_services(store, provider))
    assert out.finish_reason == "length" and len(provider.bodies) == 1  # generated anew
    record = store.get_chunk(JOB, 1)
    assert not record.from_draft and record.text == "The real continuation."
    assert store.get_text(JobKeys(JOB).output) == FIRST + "The real continuation."
    assert store.get_draft(JOB, 1) is None


def test_the_same_restart_without_check_start_is_committed(store: JobStore) -> None:
    """``check_start`` is what decides: a draft from a fixed style (no ladder) is the text it is."""
    _, etag = commit_first_chunk(store)
    store.put_draft(a_draft(index=1, base_etag=etag, content=RESTART, check_start=False, tokens=9))
    assert chunk(make_services(store, ScriptedProvider())).finish_reason == "interrupted"
    record = store.get_chunk(JOB, 1)
    assert record.from_draft and record.text == RESTART


def test_a_stream_that_ignored_the_prefill_deletes_its_drafts_before_stepping_down(store: JobStore) -> None:
    commit_first_chunk(store)
    restart = [RESTART[i : i + 4] for i in range(0, len(RESTART), 4)]  # the answer again, from the top
    clock = FakeClock()
    provider = ScriptedProvider(restart, outcome("The continuation."), clock=clock)
    services = make_services(store, provider, draft_interval_seconds=0.0, draft_min_tokens=2)
    provider.watch = lambda n: store.get_draft(JOB, 1) is not None
    out = chunk(services)
    assert any(provider.during)  # the ignored stream did checkpoint
    assert out.finish_reason == "length" and len(provider.bodies) == 2
    record = store.get_chunk(JOB, 1)
    assert [str(s) for s in record.prefill_ladder] == ["assistant:ignored"] and record.prefill_style == "vllm"
    assert record.text == "The continuation."
    assert store.get_draft(JOB, 1) is None


@pytest.mark.parametrize("cut", [40, len(FIRST)], ids=["part-of-the-echo", "the-whole-echo"])
def test_a_draft_that_holds_only_the_echo_is_no_progress_to_resume_from(store: JobStore, cut: int) -> None:
    manifest, etag = commit_first_chunk(store)
    manifest.prefill_echo = True  # the server echoes (seen on an earlier chunk)
    etag = store.put_manifest(manifest, if_match=etag)
    # checkpointed while the server was still sending the echo back (in pieces)
    store.put_draft(a_draft(index=1, base_etag=etag, content=FIRST[:cut], first_delta=FIRST[:7], tokens=12))
    provider = ScriptedProvider(outcome("The continuation."))
    out = chunk(make_services(store, provider))
    assert out.finish_reason == "length"
    assert store.get_text(JobKeys(JOB).output) == FIRST + "The continuation."
    assert store.get_draft(JOB, 1) is None


# ---- readers: output and status ---------------------------------------------------------------------


def test_read_output_shows_the_draft_beside_the_committed_text_while_running(store: JobStore) -> None:
    commit_first_chunk(store)
    services = make_services(store, ScriptedProvider(), output_inline_max_bytes=4096)
    assert read_output(JOB, 0, services).draft is None  # nothing in flight
    store.put_draft(a_draft(index=1, content="Some were", answer_text="Some were", tokens=3))
    for offset in (0, 20, len(FIRST), len(FIRST) + 100):  # every slice runs to the committed end
        page = read_output(JOB, offset, services)
        assert page.text == FIRST[offset:] and page.next_offset == max(offset, len(FIRST))
        assert page.draft is not None, offset
        assert (page.draft.chunk_index, page.draft.offset, page.draft.text, page.draft.tokens) == (
            1,
            len(FIRST),
            "Some were",
            3,
        )
    assert read_output(JOB, 0, services, include_draft=False).draft is None


def test_a_draft_larger_than_the_inline_limit_is_shown_without_its_text(store: JobStore) -> None:
    commit_first_chunk(store)
    services = make_services(store, ScriptedProvider(), output_inline_max_bytes=100)
    store.put_draft(a_draft(index=1, content="x" * 101, answer_text="x" * 101, tokens=101))
    page = read_output(JOB, 0, services)
    assert page.draft is not None and page.draft.text is None and page.draft.tokens == 101


def test_readers_ignore_a_draft_once_the_job_ended_or_of_another_chunk(store: JobStore, s3: Any) -> None:
    start(store)
    services = make_services(store, ScriptedProvider(outcome("All of it.", "stop")))
    chunk(services)
    # a draft filed under the chunk in flight but naming another chunk is no draft of it
    other = a_draft(index=5, content="elsewhere").model_dump_json().encode()
    s3.put_object(Bucket=store.bucket, Key=JobKeys(JOB).draft(1), Body=other)
    assert read_output(JOB, 0, services).draft is None and get_job(JOB, services).draft is None
    store.put_draft(a_draft(index=1, content="left behind"))  # e.g. a stale attempt's
    assert read_output(JOB, 0, services).draft is not None  # still running (finalize not yet)
    finalize(FinalizeTaskInput(job_id=JOB), services)
    page = read_output(JOB, 0, services)
    assert page.complete and page.draft is None
    assert get_job(JOB, services).draft is None


def test_get_job_shows_the_chunk_in_flight(store: JobStore) -> None:
    commit_first_chunk(store)
    services = make_services(store, ScriptedProvider())
    assert get_job(JOB, services).draft is None
    store.put_draft(a_draft(index=1, content=FIRST + "Some were", answer_text="Some were", tokens=42))
    view = get_job(JOB, services)
    assert view.progress.chunks == 1 and view.output_chars == len(FIRST)
    assert view.draft is not None
    assert (view.draft.chunk_index, view.draft.tokens, view.draft.chars) == (1, 42, len("Some were"))
    assert view.draft.updated_at == T0.replace(second=12)


# ---- review findings -----------------------------------------------------------------------------


def test_a_failing_draft_delete_does_not_fail_a_committed_chunk(store: JobStore, monkeypatch) -> None:
    """The delete after the commit is best effort, as the draft's PUT is: AccessDenied (a role
    without s3:DeleteObject) or a timeout leaves the draft behind, never fails the chunk."""
    from botocore.exceptions import ClientError

    start(store)
    provider = ScriptedProvider([f"w{n} " for n in range(30)])
    services = make_services(store, provider, draft_interval_seconds=0.0, draft_min_tokens=5)

    def denied(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"}}, "DeleteObject")

    monkeypatch.setattr(store.s3, "delete_object", denied)
    out = chunk(services)
    assert out.chunks == 1 and store.get_manifest(JOB)[0].chunks == 1
    assert store.get_draft(JOB, 0) is not None  # left behind: its manifest version has passed


def test_the_draft_view_of_a_continue_message_reply_is_what_the_commit_files(store: JobStore) -> None:
    """Readers of a draft (Ctrl-C's --out, output --follow, the live terminal) see the seam cleaned
    as the commit will clean it: no preamble, no repeated overlap."""
    from longform_core.chunk_draft import draft_view as _draft_view
    from longform_core.chunk_job import read_job as _read_job
    from longform_core.echo import SentPrefill
    from longform_core.prefill import Rung

    start(store)
    chunk(make_services(store, ScriptedProvider(outcome(FIRST))))
    manifest, etag = store.get_manifest(JOB)
    job = _read_job(store, store.get_request(JOB), manifest, etag)
    view = _draft_view(
        job, Rung("continue_message"), SentPrefill(job.answer_so_far, answer=job.answer_so_far), ""
    )
    reply = "Sure, here is the continuation:\n\nkept a log of every ship. Some were wrecked anyway."
    answer, _ = view(reply, "", reply[:4])
    assert (job.answer_so_far + answer).count("kept a log of every ship") == 1, answer
    assert "Sure, here is" not in answer
