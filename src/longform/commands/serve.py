"""``longform serve``: the HTTP API locally (no Docker), jobs kept in the state directory."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from longform_core.job_status import EXIT_FAILED, EXIT_OK

from .arguments import add_provider_arguments, add_state_argument
from .common import fail, provider_options, state_dir_of
from .inspect import local_jobs

if TYPE_CHECKING:
    from longform.local.cloud import LocalCloud
    from longform.local.providers import Provider
    from longform.local.run_record import RunRecord


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


def resumable_here(record: RunRecord | None, provider: Provider) -> bool:
    """Whether serve may resume a job: one submitted through the API (no run record), or one that
    `longform run` started on this very provider (never another's: it may cost money)."""
    return record is None or record.same_provider(provider)


def _cmd_serve(args: argparse.Namespace) -> int:
    from longform.local.aws import quiet_moto_logs
    from longform.local.cloud import CloudConfig, LocalCloud
    from longform.local.providers import ProviderChoiceError, choose_provider
    from longform.local.runner import LOCAL_DRAFT_INTERVAL_SECONDS, LOCAL_DRAFT_MIN_TOKENS
    from longform.local.state import StateDirBusy
    from longform.local.stopping import raise_on_signals

    try:
        if threading.current_thread() is threading.main_thread():
            # first, inside the try: a signal at any point of the start-up is a stop (exit 0)
            raise_on_signals(EXIT_OK)
        if not _port_free(args.host, args.port):
            return fail(f"port {args.port} on {args.host} is in use (another longform serve?); pass --port N")
        with choose_provider(provider_options(args)) as provider, quiet_moto_logs():
            config = CloudConfig.for_provider(
                provider,
                log_level="INFO" if args.verbose else "WARNING",
                state_dir=state_dir_of(args),
                # drafts often: `longform output --follow` shows the chunk in flight as it grows
                draft_interval_seconds=LOCAL_DRAFT_INTERVAL_SECONDS,
                draft_min_tokens=LOCAL_DRAFT_MIN_TOKENS,
                # a presigned URL of the local bucket would point nowhere: outputs are served inline
                extra_env={"OUTPUT_INLINE_MAX_BYTES": str(1 << 30)},
            )
            with LocalCloud(config) as cloud:
                _serve_forever(cloud, provider, args)
    except KeyboardInterrupt:
        _serve_stopped(state_dir_of(args))
    except ProviderChoiceError as exc:
        return fail(str(exc), exc.exit_code)
    except StateDirBusy as exc:
        return fail(str(exc))
    return EXIT_OK


def _serve_forever(cloud: LocalCloud, provider: Provider, args: argparse.Namespace) -> NoReturn:
    """Resume the unfinished batches and jobs of this provider, then serve the API until a signal.

    Nothing leaves here but the process's end: an error ends serve at once with one line and
    exit 1, never through ``LocalCloud.__exit__``, which waits for every running execution (up to
    120 s each) while the API, on its daemon thread, would go on serving as if nothing had happened."""
    import time

    from longform.local.serve import LocalApi
    from longform.local.stopping import exit_now, write_line

    try:
        resumed = _resume_unfinished(cloud, provider)
        try:
            api = LocalApi(cloud, host=args.host, port=args.port).start()
        except OSError as exc:
            where = f"{args.host}:{args.port}"
            write_line(f"longform: cannot serve on {where}: {exc.strerror or exc}", sys.stderr)
            exit_now(EXIT_FAILED)
        _print_serving(api, provider, args, resumed)
        while True:
            # short sleeps: a signal the kernel hands to another thread (the executions', the HTTP
            # server's) does not interrupt the main thread's sleep, and Python runs its handler only
            # when the main thread next runs bytecode
            time.sleep(0.2)
    except KeyboardInterrupt:
        _serve_stopped(state_dir_of(args))
    except Exception as exc:
        write_line(f"longform: serve failed: {type(exc).__name__}: {exc}", sys.stderr)
        exit_now(EXIT_FAILED)


def _resume_unfinished(cloud: Any, provider: Any) -> tuple[list[str], list[str], list[str]]:
    """Restart the unfinished batches (as batches: their cap holds, their output is written) and
    jobs of this provider: (batches, jobs resumed, jobs of another provider left alone). Done
    before the API starts, so a job submitted through it is never taken for one to resume (and
    started twice)."""
    from longform.local import batch as local_batch

    unfinished: list[str] = []
    elsewhere: list[str] = []
    batches = local_batch.unfinished_batches(cloud)
    for batch_id in batches:
        local_batch.resume_batch(cloud, batch_id)
    for job_id in cloud.unfinished_jobs():
        if cloud.store_dir.leases.holder(job_id) or job_id.startswith(tuple(f"{b}-" for b in batches)):
            continue  # another live process runs it, or its batch does
        record = cloud.state.load_run(job_id) if cloud.state else None
        (unfinished if resumable_here(record, provider) else elsewhere).append(job_id)
    for job_id in unfinished:
        cloud.resume(job_id)
    return batches, unfinished, elsewhere


def _print_serving(api: Any, provider: Any, args: argparse.Namespace, resumed: tuple[list[str], ...]) -> None:
    batches, unfinished, elsewhere = resumed
    example = json.dumps({"prompt": "Write a 20,000-word story"})
    print(f"longform API on {api.url}/generations (local, no auth)")
    print(f"  OpenAI-compatible on {api.url}/v1 (chat completions, models, files, batches)")
    print(f"  model {provider.model} on {provider.label}")
    note = f"; resumed {len(unfinished)} unfinished" if unfinished else ""
    note += f"; resumed {len(batches)} unfinished batch(es)" if batches else ""
    print(f"  jobs kept in {args.state_dir}{note}")
    for job_id in elsewhere:
        print(f"  not resumed (started by longform run on another provider): {job_id}")
    print(f"  try: curl -s -X POST {api.url}/generations -d '{example}'")
    sys.stdout.flush()


def _serve_stopped(state_dir: Path) -> NoReturn:
    """serve's stop: the unfinished jobs counted on disk (not through moto, whose listing can fail
    while executions write), one line, and the process ends (executions abandoned: their state is
    on disk, and the next start resumes them)."""
    from longform.local.stopping import exit_now, write_line

    try:
        running = sum(1 for job in local_jobs(state_dir) if not job.manifest.terminal)
    except Exception:  # a stop never fails on what it only reports
        running = 0
    note = f"; {running} unfinished job(s) resume at the next start" if running else ""
    write_line(f"\nlongform serve stopped{note}")
    exit_now(EXIT_OK)


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
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
