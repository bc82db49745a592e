"""Lambda's python3.13 sys.path order (the task root, the layers under /opt/python, then the
runtime's own boto3), then the runtime interface client (awslambdaric) runs the handler."""

import os
import sys


def main() -> None:
    handler = os.environ.get("_HANDLER") or os.environ.get("AWS_LAMBDA_FUNCTION_HANDLER")
    if not handler:
        sys.exit("bootstrap: neither _HANDLER nor AWS_LAMBDA_FUNCTION_HANDLER is set")
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    os.chdir(task_root)
    front = [
        task_root,
        "/opt/python/lib/python3.13/site-packages",
        "/opt/python",
        "/var/lang/lib/python3.13/site-packages",
    ]
    sys.path[:] = front + [p for p in sys.path if p not in front]
    from awslambdaric.__main__ import main as ric_main

    ric_main([sys.argv[0], handler])


if __name__ == "__main__":
    main()
