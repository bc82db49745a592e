"""The pin holds: run by ``setup.sh`` with the SAM CLI venv's Python (and by a unit test against
the sources of this directory). Fails, naming what changed, when the installed SAM CLI is not the
version ``hostnet.py`` was written for, or no longer creates its Lambda containers the way the patch
rewrites them (the runtime interface emulator as entrypoint, the container's port 8080 published).

    python check_pin.py 1.170.0
"""

from __future__ import annotations

import inspect
import sys


def check(expected: str) -> list[str]:
    problems: list[str] = []
    import samcli
    from samcli.local.docker import container as sam_container
    from samcli.local.docker import lambda_container

    if samcli.__version__ != expected:
        problems.append(f"SAM CLI is {samcli.__version__}, the host-network patch is written for {expected}")
    checks = (
        (lambda_container, '"/var/rapid/aws-lambda-rie"', "the runtime interface emulator as entrypoint"),
        (sam_container, 'RAPID_PORT_CONTAINER = "8080"', "the emulator's port 8080 in the container"),
        (sam_container, 'kwargs["ports"] = {self.RAPID_PORT_CONTAINER', "port 8080 published to the host"),
        (sam_container, "containers.create(", "docker-py's ContainerCollection.create"),
    )
    for module, needle, meaning in checks:
        if needle not in inspect.getsource(module):
            problems.append(f"{module.__name__} no longer has {meaning} ({needle!r})")
    try:
        import longform_sam_hostnet
    except ImportError:
        problems.append("longform_sam_hostnet is not installed in this venv (setup.sh copies it)")
    else:
        if expected != longform_sam_hostnet.SAM_CLI_VERSION:
            problems.append(
                f"hostnet.py says {longform_sam_hostnet.SAM_CLI_VERSION}, setup.sh pins {expected}"
            )
    return problems


def main() -> int:
    expected = sys.argv[1]
    problems = check(expected)
    for problem in problems:
        print(f"samlocal: the SAM CLI pin does not hold: {problem}", file=sys.stderr)
    if not problems:
        print(f"samlocal: SAM CLI {expected} and its host-network patch match", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
