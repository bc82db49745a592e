"""``docs/openapi.json``: the OpenAPI document generated from the API's code (``make openapi``).

python -m longform.openapi            write it
python -m longform.openapi --check    exit 1 when the file differs from the code
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from longform_core.api import openapi_json

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m longform.openapi", description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    args = parser.parse_args(argv)
    text = openapi_json()
    if args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.exists() else ""
        if current != text:
            print(f"{args.path} is out of date: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    args.path.write_text(text, encoding="utf-8")
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
