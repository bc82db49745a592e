"""Add per-file sha256 hashes to a conformance lock, for ``pip install --require-hashes``.

    python conformance/hash_lock.py VENV_PYTHON conformance/locks/NAME.txt

Each ``name==version`` line is downloaded once with the venv's own pip (``pip download --no-deps``:
the very file that pip picks for that interpreter and platform, from the same indexes and
find-links), hashed as ``pip hash`` does (sha256), and the lock is rewritten as
``name==version --hash=sha256:...``. Lines that already carry a hash are kept as they are.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def hashed_line(python: str, pin: str, scratch: Path) -> str:
    where = scratch / pin.replace("==", "-")
    subprocess.run(  # noqa: S603
        [python, "-m", "pip", "download", "--quiet", "--no-deps", pin, "-d", str(where)], check=True
    )
    files = sorted(where.iterdir())
    if len(files) != 1:
        raise SystemExit(f"hash_lock: {pin} downloaded {len(files)} files, expected one")
    return f"{pin} --hash=sha256:{file_hash(files[0])}"


def main(python: str, lock: Path) -> None:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for raw in lock.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#") or "--hash=" in line:
                out.append(raw)
                continue
            out.append(hashed_line(python, line, Path(tmp)))
            print(out[-1], file=sys.stderr)
    lock.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], Path(sys.argv[2]))
