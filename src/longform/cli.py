"""The ``longform`` command line.

Exit codes, the same for every command (``longform_core.job_status``): 0 done (succeeded, or
context_exhausted); 1 failed or cancelled (the job, the provider, the API, a state directory another
process holds); 2 bad input or usage (checked before anything starts); 3 incomplete: longform's own
rule stopped a job that was not finished, so the text is cut (a budget: max_output_tokens,
max_chunks, max_cost; or a loop guard: repetition, no_progress); 130 interrupted (Ctrl-C or
SIGTERM; the job can be resumed). ``serve`` stopped by Ctrl-C or SIGTERM exits 0: that
is how it is stopped.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES = (
    "exit codes: 0 done; 1 failed or cancelled; 2 bad input or usage; "
    "3 incomplete (a budget or a loop guard stopped it: the text is cut); "
    "130 interrupted (resume with `longform resume ID`)"
)


class UsageError(Exception):
    """Bad input found before anything started: one line, exit 2."""


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    sys.stderr.write(f"longform: {message}\n")
    return code


# ---- the request ---------------------------------------------------------------------------------


def _read_text_arg(value: str, what: str) -> str:
    if value == "-":
        if sys.stdin.isatty():
            raise UsageError(f"{what} -: type the prompt, then Ctrl-D (or pipe it in)")
        return sys.stdin.read()
    path = Path(value)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what} {value}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{what} {value}: cannot read it ({exc})") from None


def _request_from_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.request:
        text = _read_text_arg(args.request, "--request")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--request {args.request} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise UsageError(f"--request {args.request} must hold a JSON object")
    elif args.prompt_file:
        data = {"prompt": _read_text_arg(args.prompt_file, "--prompt-file")}
    elif args.prompt == "-":
        data = {"prompt": _read_text_arg("-", "--prompt")}
    elif args.prompt is not None:
        data = {"prompt": args.prompt}
    else:
        raise UsageError("give the prompt: --prompt TEXT, --prompt - (stdin), --prompt-file F or --request F")
    overrides = {
        "model": getattr(args, "model", None),
        "max_tokens_per_request": args.max_tokens_per_request,
        "context_length": args.context_length,
        "max_output_tokens": args.max_output_tokens,
        "max_chunks": args.max_chunks,
        "max_cost_usd": args.max_cost_usd,
        "temperature": args.temperature,
        "seed": args.seed,
        "stream": False if getattr(args, "provider_stream", None) is False else None,
    }
    data.update({k: v for k, v in overrides.items() if v is not None})
    return with_system_prompt(data, args)


def with_system_prompt(data: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """``--system TEXT`` / ``--system-file F``: the request as messages, the system prompt first."""
    text, file = getattr(args, "system", None), getattr(args, "system_file", None)
    if text is None and file is None:
        return data
    system = text if text is not None else _read_text_arg(str(file), "--system-file")
    if "prompt" in data and "messages" not in data:
        data = dict(data)
        prompt = data.pop("prompt")
        data["messages"] = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        return data
    messages = data.get("messages")
    if isinstance(messages, list) and any(
        isinstance(m, dict) and m.get("role") == "system" for m in messages
    ):
        raise UsageError("--system: the request already has a system message; give one or the other")
    data["messages"] = [{"role": "system", "content": system}, *(messages or [])]
    return data


def _print_invalid(exc: Any, as_json: bool) -> int:
    sys.stderr.write("longform: the request is invalid:\n")
    for problem in exc.problems:
        sys.stderr.write(f"  - {problem.field}: {problem.message}\n")
    if as_json:
        print(json.dumps({"status": "invalid", **exc.to_dict()}))
    return EXIT_USAGE


# ---- local jobs ----------------------------------------------------------------------------------


def check_base_url(url: str | None) -> None:
    """A --base-url without a scheme (``localhost:8080``) is named with the fix, before anything starts."""
    if url is not None and not url.startswith(("http://", "https://")):
        raise UsageError(f"--base-url {url}: add http:// (e.g. --base-url http://{url.split('://')[-1]})")


def _provider_options(args: argparse.Namespace) -> Any:
    from longform.local.providers import ProviderOptions

    check_base_url(args.base_url)
    emulator: dict[str, Any] = {}
    if getattr(args, "emulator_token_delay", None):
        emulator["token_delay"] = args.emulator_token_delay
    return ProviderOptions(
        emulator=args.emulator,
        base_url=args.base_url,
        model=getattr(args, "model", None),
        api_key_env=args.api_key_env,
        emulator_settings=emulator,
    )


def _out_path(value: str | None) -> Path | None:
    if value is None:
        return None
    out = Path(value)
    if value != "-" and out.is_dir():
        raise UsageError(f"--out {value} is a directory; give a file name, e.g. --out {out / 'answer.md'}")
    if value != "-" and out.suffix == ".json":
        raise UsageError(
            f"--out {value} would be overwritten by the job's own result file ({out.name}); "
            f"use --out {out.with_suffix('.md')}"
        )
    return out


def _state_dir(args: argparse.Namespace) -> Path:
    return Path(args.state_dir)


def _run_options(args: argparse.Namespace, request: dict[str, Any]) -> Any:
    from longform.local.runner import RunOptions
    from longform.local.terminal import choose_mode

    out = _out_path(args.out)
    to_stdout = out is not None and str(out) == "-"
    return RunOptions(
        request=request,
        provider=_provider_options(args),
        max_tokens_per_request=args.max_tokens_per_request,
        context_length=args.context_length,
        out=out,
        chunk_timeout=args.chunk_timeout,
        deadline_margin=args.deadline_margin,
        verbose=args.verbose,
        state_dir=_state_dir(args),
        mode=choose_mode(stream=args.stream, quiet=args.quiet, text_to_stdout=not (args.json or to_stdout)),
        stream=False if args.provider_stream is False else None,
    )


def _finish_run(args: argparse.Namespace, call: Any) -> int:
    from longform_core.errors import RequestInvalid

    from longform.local.providers import ProviderChoiceError
    from longform.local.runner import Interrupted, JobNotExtendable, JobNotResumable
    from longform.local.state import StateDirBusy

    try:
        summary = call()
    except RequestInvalid as exc:
        return _print_invalid(exc, args.json)
    except ProviderChoiceError as exc:
        return _fail(str(exc), exc.exit_code)
    except StateDirBusy as exc:
        return _fail(str(exc))
    except JobNotResumable as exc:
        return _fail(str(exc), EXIT_USAGE)
    except JobNotExtendable as exc:
        show = f"`longform show {getattr(args, 'job_id', 'ID')}`"
        budgets = "--max-chunks/--max-output-tokens/--max-cost"
        hint = f"{show} says how it ended; {budgets} extend what a budget stopped"
        return _fail(f"{exc} ({hint})", EXIT_USAGE)
    except Interrupted as stop:  # on_interrupt normally exits first
        _report(args, stop.summary)
        return EXIT_INTERRUPTED
    _report(args, summary)
    return int(summary.exit_code)


def _report(args: argparse.Namespace, summary: Any) -> None:
    from longform.local.runner import print_summary, summary_json

    to_stdout = args.out == "-"
    if not args.quiet:
        print_summary(summary, sys.stderr if (args.json or to_stdout) else sys.stdout)
    if args.json:
        print(summary_json(summary))


def _with_interrupts(args: argparse.Namespace, options: Any, call: Any) -> int:
    """``_finish_run(call)`` with Ctrl-C handled (``_handle_interrupts``), the previous SIGINT
    handler restored after (in-process callers, tests, keep theirs)."""
    if threading.current_thread() is not threading.main_thread():
        return _finish_run(args, call)
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    _handle_interrupts(args, options)
    try:
        return _finish_run(args, call)
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def _handle_interrupts(args: argparse.Namespace, options: Any) -> None:
    """The first Ctrl-C stops following the job: what is committed (and the draft) is written and
    the summary printed, then the process exits 130 without waiting for the chunk in flight (its
    text is in its draft; nothing half-done is committed). A second Ctrl-C exits at once."""

    def first(signum: int, frame: Any) -> None:
        from longform.local.stopping import arm_exit

        signal.signal(signal.SIGINT, lambda *_: os._exit(EXIT_INTERRUPTED))
        signal.signal(signal.SIGTERM, lambda *_: os._exit(EXIT_INTERRUPTED))
        arm_exit(EXIT_INTERRUPTED)  # whatever the summary's reads meet, the process ends in time
        options.stop.set()

    def exit_now(summary: Any) -> None:
        _report(args, summary)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)  # the executions' threads are abandoned: what is on disk is whole

    options.on_interrupt = exit_now
    signal.signal(signal.SIGINT, first)
    signal.signal(signal.SIGTERM, first)  # kill, systemd, a CI timeout: the same as Ctrl-C


def _cmd_run(args: argparse.Namespace) -> int:
    from longform.local.runner import run

    if args.out is None and not (args.json or args.quiet) and not sys.stdout.isatty():
        args.out = "-"  # `longform run ... > answer.md`: the answer on stdout (as llm), the rest on stderr
    options = _run_options(args, _request_from_args(args))
    return _with_interrupts(args, options, lambda: run(options))


def _cmd_resume(args: argparse.Namespace) -> int:
    from longform.local.run_options import recorded_out
    from longform.local.runner import resume
    from longform.local.state import StateDir

    if args.out is None:  # the file the job was started with, else as `run`: stdout when piped
        out = recorded_out(StateDir(_state_dir(args)).load_run(args.job_id))
        piped = not (args.json or args.quiet) and not sys.stdout.isatty()
        args.out = str(out) if out is not None else ("-" if piped else None)
    options = _run_options(args, {})
    options.max_chunks, options.max_output_tokens = args.max_chunks, args.max_output_tokens
    options.max_cost_usd = args.max_cost_usd
    return _with_interrupts(args, options, lambda: resume(args.job_id, options))


@dataclass(frozen=True)
class LocalJob:
    manifest: Any  # longform_core.models.Manifest
    prompt: str  # the prompt (or last user message), whitespace folded


def _local_job(state: Any, job_id: str) -> LocalJob | None:
    """One job of a state directory, read from disk (no moto: works while another process runs);
    None when it has no readable manifest."""
    from longform_core.job_store import JobKeys
    from longform_core.models import Manifest
    from longform_core.request import GenerationRequest

    keys = JobKeys(job_id)
    raw = state.read_object(keys.manifest)
    if raw is None:
        return None
    try:
        manifest = Manifest.model_validate_json(raw)
    except ValueError:
        return None
    prompt = ""
    request_raw = state.read_object(keys.request)
    if request_raw:
        try:
            request = GenerationRequest.model_validate_json(request_raw)
            users = [m for m in request.messages or [] if m.role == "user"]
            prompt = request.prompt or (str(users[-1].content) if users else "")
        except ValueError:
            prompt = ""
    return LocalJob(manifest, " ".join(prompt.split()))


def _local_jobs(state_dir: Path) -> list[LocalJob]:
    """The jobs of a state directory, most recently updated first."""
    from longform.local.state import StateDir

    state = StateDir(state_dir)
    jobs = [job for job_id in state.job_ids() if (job := _local_job(state, job_id)) is not None]
    jobs.sort(key=lambda j: j.manifest.updated_at, reverse=True)
    return jobs


def _cmd_list(args: argparse.Namespace) -> int:
    jobs = _local_jobs(_state_dir(args))[: args.limit]
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "job_id": j.manifest.job_id,
                        "status": j.manifest.status,
                        "incomplete_reason": j.manifest.incomplete_reason,
                        "chunks": j.manifest.chunks,
                        "output_tokens": j.manifest.completion_tokens_total,
                        "updated_at": j.manifest.updated_at.isoformat(),
                        "prompt": j.prompt[:200],
                    }
                    for j in jobs
                ]
            )
        )
        return EXIT_OK
    if not jobs:
        print(f"no jobs in {args.state_dir} (longform run starts one)")
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("job", "status", "chunks", "tokens", "updated", "prompt"):
        table.add_column(column, justify="right" if column in ("chunks", "tokens") else "left", no_wrap=True)
    for j in jobs:
        m = j.manifest
        table.add_row(
            m.job_id,
            m.status + (f" ({m.incomplete_reason})" if m.incomplete_reason else ""),
            str(m.chunks),
            f"{m.completion_tokens_total:,}",
            m.updated_at.strftime("%Y-%m-%d %H:%M"),
            j.prompt[:48] + ("…" if len(j.prompt) > 48 else ""),
        )
    Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(table)
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    from longform_core.job_store import JobKeys
    from longform_core.models import JobResult
    from longform_core.status import job_view

    from longform.local.state import StateDir
    from longform.local.terminal import print_table

    state = StateDir(_state_dir(args))
    job = _local_job(state, args.job_id) if args.job_id in state.job_ids() else None
    if job is None:
        return _fail(f"no job {args.job_id} in {args.state_dir} (longform list shows its jobs)", EXIT_USAGE)
    manifest, keys = job.manifest, JobKeys(args.job_id)
    view = job_view(manifest)
    raw = state.read_object(keys.result)
    result = JobResult.model_validate_json(raw) if raw else None
    if args.json:
        print(
            json.dumps(
                {
                    "job": view.model_dump(mode="json"),
                    "result": result.model_dump(mode="json") if result else None,
                }
            )
        )
        return EXIT_OK
    rows = [
        ("job", view.job_id),
        ("status", view.status + _show_hint(state, manifest, view.job_id)),
        ("model", view.model),
        ("prompt", job.prompt[:120]),
        ("chunks", str(view.progress.chunks)),
        ("output tokens", f"{view.progress.output_tokens:,}"),
        ("characters", f"{view.output_chars:,}"),
    ]
    if view.stop_reason:
        rows.append(("stop", f"{view.stop_reason} (finish: {view.finish_reason})"))
    if view.incomplete_reason:
        detail = view.stop_detail or "the text is not finished"
        rows.append(("incomplete", f"{view.incomplete_reason}: {detail}"))
    if result is not None and result.in_flight_chunk is not None:
        kept = result.in_flight_chunk
        rows.append(("in flight", f"chunk {kept.chunk_index} kept from its draft ({kept.chars:,} chars)"))
    if view.error:
        rows.append(("error", view.error))
    if result is not None:
        rows.append(("result", str(state.object_path(keys.result))))
        if result.estimated_cost_usd is not None:
            rows.append(("estimated cost", f"${result.estimated_cost_usd:.6f}"))
    rows.append(("output", str(state.object_path(keys.output))))
    print_table(rows, sys.stdout)
    return EXIT_OK


def _show_hint(state: Any, manifest: Any, job_id: str) -> str:
    """What to do about a job that has not ended: resume it, unless a live process runs it."""
    if manifest.terminal:
        return ""
    holder = state.leases.holder(job_id)
    return f"  (being run by {holder})" if holder else f"  (resume: longform resume {job_id})"


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as the server binds it (http.server: allow_reuse_address): connections of an earlier
        # server still in TIME_WAIT do not make the port busy
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _same_provider(record: dict[str, Any] | None, provider: Any) -> bool:
    """Whether serve may resume a job: one submitted through the API (no run record), or one that
    `longform run` started on this very provider (never another's: it may cost money)."""
    if record is None:
        return True
    if record.get("provider") != provider.kind:
        return False
    return bool(provider.kind == "emulator" or record.get("base_url") == provider.base_url)


def _cmd_serve(args: argparse.Namespace) -> int:
    from longform.local.aws import quiet_moto_logs
    from longform.local.cloud import CloudConfig, LocalCloud
    from longform.local.providers import ProviderChoiceError, choose_provider
    from longform.local.runner import LOCAL_DRAFT_INTERVAL_SECONDS, LOCAL_DRAFT_MIN_TOKENS
    from longform.local.serve import LocalApi
    from longform.local.state import StateDirBusy

    if not _port_free(args.host, args.port):
        return _fail(f"port {args.port} on {args.host} is in use (another longform serve?); pass --port N")
    if threading.current_thread() is threading.main_thread():
        from longform.local.stopping import raise_on_signals

        raise_on_signals(EXIT_OK)  # from the start: a stop while resuming jobs is a stop too
    try:
        with choose_provider(_provider_options(args)) as provider, quiet_moto_logs():
            config = CloudConfig(
                provider_base_url=provider.base_url,
                model=provider.model,
                api_key=provider.api_key,
                log_level="INFO" if args.verbose else "WARNING",
                state_dir=_state_dir(args),
                # drafts often: `longform output --follow` shows the chunk in flight as it grows
                draft_interval_seconds=LOCAL_DRAFT_INTERVAL_SECONDS,
                draft_min_tokens=LOCAL_DRAFT_MIN_TOKENS,
                # a presigned URL of the local bucket would point nowhere: outputs are served inline
                extra_env={"OUTPUT_INLINE_MAX_BYTES": str(1 << 30)},
            )
            with LocalCloud(config) as cloud:
                try:
                    api = LocalApi(cloud, host=args.host, port=args.port).start()
                except OSError as exc:
                    return _fail(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}")
                except KeyboardInterrupt:  # here, not after LocalCloud's exit: it waits for executions
                    _serve_stopped(_state_dir(args))
                try:
                    _serve_forever(cloud, api, provider, args)
                except KeyboardInterrupt:
                    _serve_stopped(_state_dir(args))
    except KeyboardInterrupt:
        _serve_stopped(_state_dir(args))
    except ProviderChoiceError as exc:
        return _fail(str(exc), exc.exit_code)
    except StateDirBusy as exc:
        return _fail(str(exc))
    return EXIT_OK


def _serve_forever(cloud: Any, api: Any, provider: Any, args: argparse.Namespace) -> NoReturn:
    """Resume the unfinished batches and jobs of this provider, say where the API is, and serve
    until a signal."""
    import time

    from longform.local import batch as local_batch

    unfinished: list[str] = []
    elsewhere: list[str] = []
    batches = local_batch.unfinished_batches(cloud)
    for batch_id in batches:  # as batches: their cap holds, their output is written
        local_batch.resume_batch(cloud, batch_id)
    for job_id in cloud.unfinished_jobs():
        if cloud.store_dir.leases.holder(job_id) or job_id.startswith(tuple(f"{b}-" for b in batches)):
            continue  # another live process runs it, or its batch does
        record = cloud.state.load_run(job_id) if cloud.state else None
        (unfinished if _same_provider(record, provider) else elsewhere).append(job_id)
    for job_id in unfinished:
        cloud.resume(job_id)
    example = json.dumps({"prompt": "Write a 20,000-word story"})
    print(f"longform API on {api.url}/generations (local, no auth)")
    print(f"  OpenAI-compatible on {api.url}/v1 (chat completions, models, files, batches)")
    print(f"  model {provider.model} on {provider.label}")
    resumed = f"; resumed {len(unfinished)} unfinished" if unfinished else ""
    resumed += f"; resumed {len(batches)} unfinished batch(es)" if batches else ""
    print(f"  jobs kept in {args.state_dir}{resumed}")
    for job_id in elsewhere:
        print(f"  not resumed (started by longform run on another provider): {job_id}")
    print(f"  try: curl -s -X POST {api.url}/generations -d '{example}'")
    sys.stdout.flush()
    while True:
        # short sleeps: a signal the kernel hands to another thread (the executions', the HTTP
        # server's) does not interrupt the main thread's sleep, and Python runs its handler only
        # when the main thread next runs bytecode
        time.sleep(0.2)


def _serve_stopped(state_dir: Path) -> NoReturn:
    """serve's stop: the unfinished jobs counted on disk (not through moto, whose listing can fail
    while executions write), one line, and the process ends (executions abandoned: their state is
    on disk, and the next start resumes them)."""
    from longform.local.stopping import exit_now, write_line

    try:
        running = sum(1 for job in _local_jobs(state_dir) if not job.manifest.terminal)
    except Exception:  # a stop never fails on what it only reports
        running = 0
    note = f"; {running} unfinished job(s) resume at the next start" if running else ""
    write_line(f"\nlongform serve stopped{note}")
    exit_now(EXIT_OK)


def _cmd_drop(args: argparse.Namespace) -> int:
    """The S3 drop folder, locally: upload FILE as requests/{name}{ext}, wait, fetch results/{name}.*."""
    from longform.local.aws import quiet_moto_logs
    from longform.local.cloud import BUCKET, CloudConfig, LocalCloud
    from longform.local.providers import ProviderChoiceError, choose_provider
    from longform.local.state import StateDirBusy, key_problem

    path = Path(args.file)
    if path.suffix not in (".json", ".txt", ".md"):
        return _fail("the drop folder takes .json requests and .txt/.md prompts", EXIT_USAGE)
    name = args.name or path.stem
    problem = key_problem(f"requests/{name}{path.suffix}")
    if problem:
        return _fail(f"--name {name!r} cannot name an object (it {problem})", EXIT_USAGE)
    try:
        body = path.read_bytes()  # before anything starts
    except OSError as exc:
        return _fail(f"{args.file}: {exc.strerror or exc}", EXIT_USAGE)
    if path.suffix == ".json":  # the drop folder's own check (drop_folder._parse), before anything starts
        from longform_core.errors import RequestInvalid
        from longform_core.request import parse_request

        try:
            parse_request(body)
        except RequestInvalid as exc:
            return _print_invalid(exc, False)
    try:
        with choose_provider(_provider_options(args)) as provider, quiet_moto_logs():
            config = CloudConfig(
                provider_base_url=provider.base_url,
                model=provider.model,
                api_key=provider.api_key,
                state_dir=_state_dir(args),
            )
            with LocalCloud(config) as cloud:
                outcomes = cloud.drop(name, body, suffix=path.suffix)
                for outcome in outcomes:
                    if outcome.get("job_id"):
                        sys.stderr.write(
                            f"longform: requests/{name}{path.suffix} started job {outcome['job_id']}\n"
                        )
                        cloud.wait(outcome["job_id"], timeout=24 * 3600)
                cloud.wait_async()
                out_dir = Path(args.out)
                out_dir.mkdir(parents=True, exist_ok=True)
                listing = cloud.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"results/{name}.")
                written = []
                for obj in listing.get("Contents", []):
                    target = out_dir / obj["Key"].rsplit("/", 1)[-1]
                    target.write_bytes(cloud.s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())
                    written.append(f"{obj['Key']} -> {target}")
    except ProviderChoiceError as exc:
        return _fail(str(exc), exc.exit_code)
    except StateDirBusy as exc:
        return _fail(str(exc))
    print("\n".join(written) if written else f"no results/{name}.* written")
    failed = not written or any(w.startswith(f"results/{name}.error") for w in written)
    return EXIT_FAILED if failed else EXIT_OK


# ---- the API client ------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Any:
    from longform.client import ApiClient

    key = None
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise UsageError(f"--api-key-env {args.api_key_env}: that variable is not set")
    return ApiClient(args.api, api_key=key)


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _api_call(args: argparse.Namespace, fn: Any) -> int:
    from longform.client import ApiError, ApiUnreachable

    try:
        fn(_client(args))
    except ApiError as exc:
        return _fail(str(exc), EXIT_USAGE if exc.status in (400, 404, 413, 422) else EXIT_FAILED)
    except ApiUnreachable as exc:
        return _fail(str(exc))
    return EXIT_OK


def _show_view(args: argparse.Namespace, client: Any, view: Any) -> None:
    from longform.views import print_view

    print_view(view, as_json=args.json, api=client.base_url)


def _cmd_submit(args: argparse.Namespace) -> int:
    raw = _request_from_args(args)
    return _api_call(args, lambda c: _show_view(args, c, c.submit(raw, idempotency_key=args.idempotency_key)))


def _cmd_status(args: argparse.Namespace) -> int:
    return _api_call(args, lambda c: _show_view(args, c, c.status(args.job_id)))


def _cmd_output(args: argparse.Namespace) -> int:
    def show(client: Any) -> None:
        if args.follow:
            for text in client.follow(
                args.job_id, poll=args.poll, offset=args.offset, drafts=not args.committed
            ):
                sys.stdout.write(text)
                sys.stdout.flush()
            return
        page = client.output(args.job_id, offset=args.offset)
        if page.get("text") is None and page.get("url"):
            import httpx

            sys.stdout.write(httpx.get(page["url"], timeout=120).text[args.offset :])
        else:
            sys.stdout.write(page.get("text") or "")

    return _api_call(args, show)


def _cmd_cancel(args: argparse.Namespace) -> int:
    return _api_call(args, lambda c: _show_view(args, c, c.cancel(args.job_id)))


def _cmd_emulator(args: argparse.Namespace) -> int:
    from longform.emulator.cli import run_from_args

    result: int = run_from_args(args)
    return result


# ---- the parser ----------------------------------------------------------------------------------


class DefaultsHelp(argparse.HelpFormatter):
    """Every option's default in its help, unless the help already says it or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        no_default = action.default in (None, False, argparse.SUPPRESS)
        if "default" in text or no_default or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse, with "did you mean" for a mistyped option and every default in the help."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("formatter_class", DefaultsHelp)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if " not allowed with argument " in message:  # --prompt with --prompt-file: one line
            self.exit(EXIT_USAGE, f"{self.prog}: error: {message.replace('argument ', '')}\n")
        if message.startswith("unrecognized arguments:"):
            known = [s for a in self._actions for s in a.option_strings]
            for sub in self._subparsers._group_actions if self._subparsers else []:
                for parser in getattr(sub, "choices", {}).values():
                    known += [s for a in parser._actions for s in a.option_strings]
            wrong = [w for w in message.split(":", 1)[1].split() if w.startswith("-")]
            hints = []
            for w in wrong:
                option = w.split("=")[0]
                if option in known:  # another command's option: a did-you-mean would name it back
                    hints.append(f"{w} (not an option of this command; `longform COMMAND --help` lists them)")
                elif m := difflib.get_close_matches(option, known, 1):
                    hints.append(f"{w} (did you mean {m[0]}?)")
            if hints:
                message = "unrecognized arguments: " + ", ".join(hints)
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def add_request_arguments(parser: argparse.ArgumentParser) -> None:
    """The request: --prompt/--prompt-file/--request, and the fields a flag may override."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--prompt", metavar="TEXT", help="the prompt text; - reads it from stdin")
    source.add_argument("--prompt-file", metavar="FILE", help="read the prompt from FILE")
    source.add_argument("--request", metavar="FILE", help="a JSON request file (the public request format)")
    system = parser.add_mutually_exclusive_group()
    system.add_argument("--system", metavar="TEXT", help="a system prompt (sent before the prompt)")
    system.add_argument("--system-file", metavar="FILE", help="read the system prompt from FILE")
    parser.add_argument("--model", help="the model (default: the provider's; see --base-url)")
    parser.add_argument(
        "--max-tokens-per-request", type=int, metavar="N", help="per-request output cap (default 16384)"
    )
    parser.add_argument(
        "--context-length", type=int, metavar="N", help="the model's context length, when known"
    )
    add_budget_arguments(parser)
    parser.add_argument("--temperature", type=float, help="sampling temperature")
    parser.add_argument("--seed", type=int, help="sampling seed")
    parser.add_argument(
        "--no-provider-stream",
        dest="provider_stream",
        action="store_false",
        default=None,
        help="ask the provider without streaming (for gateways that buffer SSE); the deadline is then "
        "only a read timeout",
    )


def add_budget_arguments(parser: argparse.ArgumentParser, *, extend: bool = False) -> None:
    """The job's budgets (``resume``: new, larger ones extend an incomplete job a budget stopped)."""
    verb = "extend an incomplete job to" if extend else "of the whole job"
    parser.add_argument("--max-output-tokens", type=int, metavar="N", help=f"token budget: {verb} N tokens")
    parser.add_argument("--max-chunks", type=int, metavar="N", help=f"chunk budget: {verb} N chunks")
    parser.add_argument(
        "--max-cost",
        dest="max_cost_usd",
        type=float,
        metavar="USD",
        help=f"cost budget: {verb} USD estimated",
    )


def add_provider_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "provider (default: DeepInfra when the API key variable is set, else the emulator)"
    )
    group.add_argument("--emulator", action="store_true", help="use the built-in emulator, whatever is set")
    group.add_argument(
        "--base-url", metavar="URL", help="an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1"
    )
    group.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="the environment variable that holds the provider's API key (default: DEEPINFRA_API_KEY, "
        "sent only to DeepInfra; a --base-url server gets a key only when this names it)",
    )
    group.add_argument(
        "--emulator-token-delay",
        type=float,
        metavar="SECONDS",
        help="emulator: seconds per token (a slow model)",
    )


def add_state_argument(parser: argparse.ArgumentParser) -> None:
    from longform.local.state import default_state_dir

    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        default=str(default_state_dir()),
        help="where local jobs are kept (also $LONGFORM_STATE_DIR)",
    )


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="write the answer to FILE (and FILE's .json: the result); - for stdout "
        "(default out/<job id>.md)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line on stdout")
    parser.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="print the answer as it is generated (default: when stdout is a terminal)",
    )
    parser.add_argument("--quiet", action="store_true", help="neither the answer nor progress: errors only")
    parser.add_argument(
        "--chunk-timeout",
        type=float,
        metavar="SECONDS",
        help="the chunk Lambda's timeout (default: the template's)",
    )
    parser.add_argument(
        "--deadline-margin",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="seconds kept free before the timeout",
    )
    parser.add_argument("--verbose", action="store_true", help="the handlers' INFO logs and full tracebacks")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("longform")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="longform",
        description="Durable long LLM generations past the per-request output cap (response continuation).",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"longform {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    run = sub.add_parser(
        "run",
        help="run one job end to end locally: the real state machine under moto, handlers in-process",
        description=(
            "Runs a job through statemachine/generation.asl.json under moto's Step Functions interpreter, "
            "shows the answer as it is generated and keeps the job in --state-dir, so Ctrl-C can be "
            "followed by `longform resume ID`."
        ),
        epilog=EXIT_CODES,
    )
    add_request_arguments(run)
    add_provider_arguments(run)
    add_output_arguments(run)
    add_state_argument(run)
    run.set_defaults(func=_cmd_run)

    resume = sub.add_parser(
        "resume",
        help="continue a local job that did not end, from its last commit or draft",
        description="Continues a job of --state-dir through the same state machine. Provider options "
        "default to those the job was started with.",
        epilog=EXIT_CODES,
    )
    resume.add_argument("job_id", metavar="ID")
    resume.add_argument(
        "--max-tokens-per-request", type=int, metavar="N", help="per-request output cap (default: as started)"
    )
    resume.add_argument(
        "--context-length", type=int, metavar="N", help="the model's context length (default: as started)"
    )
    resume.add_argument("--model", help="the model (default: as started)")
    add_budget_arguments(resume, extend=True)
    resume.add_argument(
        "--no-provider-stream",
        dest="provider_stream",
        action="store_false",
        default=None,
        help="ask the provider without streaming",
    )
    add_provider_arguments(resume)
    add_output_arguments(resume)
    add_state_argument(resume)
    resume.set_defaults(func=_cmd_resume)

    jobs = sub.add_parser("list", help="recent local jobs (id, status, chunks, tokens, prompt)")
    jobs.add_argument("--limit", type=int, default=20, metavar="N", help="how many")
    jobs.add_argument("--json", action="store_true", help="a JSON array instead of the table")
    add_state_argument(jobs)
    jobs.set_defaults(func=_cmd_list)

    show = sub.add_parser("show", help="status and result of a local job")
    show.add_argument("job_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="the job's view and result as JSON")
    add_state_argument(show)
    show.set_defaults(func=_cmd_show)

    serve = sub.add_parser(
        "serve",
        help="serve the HTTP API locally (no Docker): the API function in-process on the local moto cloud",
        description="Jobs are kept in --state-dir and survive restarts; unfinished ones resume at start.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    serve.add_argument("--port", type=int, default=8787, help="the port to listen on")
    serve.add_argument("--model", help="the default model (default: the provider's)")
    add_provider_arguments(serve)
    add_state_argument(serve)
    serve.add_argument("--verbose", action="store_true", help="the handlers' INFO logs")
    serve.set_defaults(func=_cmd_serve)

    drop = sub.add_parser(
        "drop",
        help="the S3 drop folder, locally: upload FILE as requests/NAME, wait, copy results/NAME.* to --out",
    )
    drop.add_argument("file", metavar="FILE", help="a .json request, or a .txt/.md prompt")
    drop.add_argument("--name", help="the name under requests/ (default: the file name without extension)")
    drop.add_argument("--out", default="out/results", metavar="DIR", help="where to copy results/NAME.*")
    drop.add_argument("--model", help="the default model (default: the provider's)")
    add_provider_arguments(drop)
    add_state_argument(drop)
    drop.set_defaults(func=_cmd_drop)

    def client_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--api",
            metavar="URL",
            help="the API base URL (default $LONGFORM_API_URL or http://127.0.0.1:8787); "
            "an execute-api URL is signed with SigV4 using your AWS credentials",
        )
        p.add_argument(
            "--api-key-env",
            metavar="VAR",
            help="send the API key held in this environment variable as x-api-key (instead of SigV4)",
        )
        if p.prog.split()[-1] in ("submit", "status", "cancel"):
            p.add_argument("--json", action="store_true", help="the API's JSON instead of the readable view")

    submit = sub.add_parser("submit", help="submit a job to a deployed or local API")
    client_args(submit)
    add_request_arguments(submit)
    submit.add_argument("--idempotency-key", metavar="KEY", help="the same key never starts a second job")
    submit.set_defaults(func=_cmd_submit)

    status = sub.add_parser("status", help="status and progress of a job")
    client_args(status)
    status.add_argument("job_id", metavar="ID")
    status.set_defaults(func=_cmd_status)

    output = sub.add_parser("output", help="the output of a job so far")
    client_args(output)
    output.add_argument("job_id", metavar="ID")
    output.add_argument("--offset", type=int, default=0, metavar="N", help="start at this character")
    output.add_argument(
        "--follow", action="store_true", help="keep printing as the output grows (the chunk in flight too)"
    )
    output.add_argument(
        "--committed", action="store_true", help="with --follow: committed text only, no drafts"
    )
    output.add_argument(
        "--poll", type=float, default=1.0, metavar="SECONDS", help="--follow's polling interval"
    )
    output.set_defaults(func=_cmd_output)

    cancel = sub.add_parser("cancel", help="cancel a job (its partial output is kept)")
    client_args(cancel)
    cancel.add_argument("job_id", metavar="ID")
    cancel.set_defaults(func=_cmd_cancel)

    from longform.batch_cli import add_batch_command

    add_batch_command(sub)

    emu = sub.add_parser("emulator", help="run the DeepInfra-compatible emulator on loopback")
    from longform.emulator.cli import add_arguments

    add_arguments(emu)
    emu.set_defaults(func=_cmd_emulator)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except Exception as exc:
        if getattr(args, "verbose", False):
            raise
        return _fail(f"{type(exc).__name__}: {exc} (--verbose shows the traceback)")
    return result


if __name__ == "__main__":
    raise SystemExit(main())
