"""``longform drop``: the S3 drop folder, locally."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from longform_core.job_status import EXIT_FAILED, EXIT_OK, EXIT_USAGE

from .arguments import add_provider_arguments, add_state_argument
from .common import fail, print_invalid, provider_options, state_dir_of


def _cmd_drop(args: argparse.Namespace) -> int:
    """The S3 drop folder, locally: upload FILE as requests/{name}{ext}, wait, fetch results/{name}.*."""
    from longform.local.aws import quiet_moto_logs
    from longform.local.cloud import BUCKET, CloudConfig, LocalCloud
    from longform.local.providers import ProviderChoiceError, choose_provider
    from longform.local.state import StateDirBusy, key_problem

    path = Path(args.file)
    if path.suffix not in (".json", ".txt", ".md"):
        return fail("the drop folder takes .json requests and .txt/.md prompts", EXIT_USAGE)
    name = args.name or path.stem
    problem = key_problem(f"requests/{name}{path.suffix}")
    if problem:
        return fail(f"--name {name!r} cannot name an object (it {problem})", EXIT_USAGE)
    try:
        body = path.read_bytes()  # before anything starts
    except OSError as exc:
        return fail(f"{args.file}: {exc.strerror or exc}", EXIT_USAGE)
    if path.suffix == ".json":  # the drop folder's own check (drop_folder._parse), before anything starts
        from longform_core.errors import RequestInvalid
        from longform_core.request import parse_request

        try:
            parse_request(body)
        except RequestInvalid as exc:
            return print_invalid(exc, False)
    try:
        with choose_provider(provider_options(args)) as provider, quiet_moto_logs():
            config = CloudConfig.for_provider(
                provider,
                state_dir=state_dir_of(args),
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
        return fail(str(exc), exc.exit_code)
    except StateDirBusy as exc:
        return fail(str(exc))
    print("\n".join(written) if written else f"no results/{name}.* written")
    failed = not written or any(w.startswith(f"results/{name}.error") for w in written)
    return EXIT_FAILED if failed else EXIT_OK


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
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
