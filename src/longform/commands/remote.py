"""``longform submit``, ``status``, ``output``, ``cancel``: a job on a deployed or local API."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from longform_core.job_status import EXIT_FAILED, EXIT_OK, EXIT_USAGE

from .arguments import add_request_arguments
from .common import UsageError, fail, request_from_args

if TYPE_CHECKING:
    from longform.client import ApiClient


def _client(args: argparse.Namespace) -> ApiClient:
    from longform.client import ApiClient

    key = None
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise UsageError(f"--api-key-env {args.api_key_env}: that variable is not set")
    return ApiClient(args.api, api_key=key)


def _api_call(args: argparse.Namespace, fn: Callable[[ApiClient], None]) -> int:
    from longform.client import ApiError, ApiUnreachable

    try:
        fn(_client(args))
    except ApiError as exc:
        return fail(str(exc), EXIT_USAGE if exc.status in (400, 404, 413, 422) else EXIT_FAILED)
    except ApiUnreachable as exc:
        return fail(str(exc))
    return EXIT_OK


def _show_view(args: argparse.Namespace, client: ApiClient, view: Any) -> None:
    from longform.views import print_view

    print_view(view, as_json=args.json, api=client.base_url)


def _cmd_submit(args: argparse.Namespace) -> int:
    raw = request_from_args(args)
    return _api_call(args, lambda c: _show_view(args, c, c.submit(raw, idempotency_key=args.idempotency_key)))


def _cmd_status(args: argparse.Namespace) -> int:
    return _api_call(args, lambda c: _show_view(args, c, c.status(args.job_id)))


def _cmd_output(args: argparse.Namespace) -> int:
    def show(client: ApiClient) -> None:
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


def _client_arguments(p: argparse.ArgumentParser) -> None:
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


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    submit = sub.add_parser("submit", help="submit a job to a deployed or local API")
    _client_arguments(submit)
    add_request_arguments(submit)
    submit.add_argument("--idempotency-key", metavar="KEY", help="the same key never starts a second job")
    submit.set_defaults(func=_cmd_submit)

    status = sub.add_parser("status", help="status and progress of a job")
    _client_arguments(status)
    status.add_argument("job_id", metavar="ID")
    status.set_defaults(func=_cmd_status)

    output = sub.add_parser("output", help="the output of a job so far")
    _client_arguments(output)
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
    _client_arguments(cancel)
    cancel.add_argument("job_id", metavar="ID")
    cancel.set_defaults(func=_cmd_cancel)
