"""``OUT.jsonl.partial``, the checkpoint of ``longform batch``: what a rerun keeps.

A header (the input's hash and the options: another file or other options start over), then one
entry per line that has ended (its output line, keyed by the line's number in the file: identical
lines are different lines), and, when the jobs are kept in a state directory, the batch that runs
the other lines (its id and which line each of its items is), so that a rerun resumes that very
batch (its id, its cap, its output) instead of starting another.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

PARTIAL_SUFFIX = ".partial"
PARTIAL_VERSION = 2  # 2: lines keyed by their line number (1 keyed them by content: identical lines collided)
# a cancelled line runs again on resume
DONE_STATUSES = {"succeeded", "context_exhausted", "incomplete", "failed"}


def numbered_lines(data: bytes) -> list[tuple[int, bytes]]:
    """(1-based line number, bytes) of every non-blank line, as ``parse_batch`` numbers them."""
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[0].startswith(b"\xef\xbb\xbf"):
        raw_lines[0] = raw_lines[0][3:]
    return [(n, raw) for n, raw in enumerate(raw_lines, start=1) if raw.strip()]


class Checkpoint:
    """``OUT.jsonl.partial``: a header, then one output line per line that has ended."""

    def __init__(self, path: Path, header: dict[str, Any]):
        self.path = path
        self.header = header
        self.done: dict[str, dict[str, Any]] = {}  # line number -> output line
        # the batch running the lines not done: (its id, the line key of each of its items)
        self.batch: tuple[str, list[str]] | None = None

    def load(self) -> int:
        if not self.path.exists():
            return 0
        with self.path.open(encoding="utf-8") as fh:
            first = fh.readline()
            try:
                header = json.loads(first)
            except ValueError:
                return 0
            if header != self.header:
                return 0  # another file, or other options: start over
            for text in fh:
                with contextlib.suppress(ValueError, KeyError, TypeError):  # a line cut by a crash mid-write
                    entry = json.loads(text)
                    if "batch_id" in entry:
                        self.batch = (str(entry["batch_id"]), [str(k) for k in entry["keys"]])
                    else:
                        self.done[entry["key"]] = entry["output"]
        return len(self.done)

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", encoding="utf-8") as fh:
            fh.write(json.dumps(self.header) + "\n")
            if self.batch is not None:
                fh.write(json.dumps({"batch_id": self.batch[0], "keys": self.batch[1]}) + "\n")
            for key, output in self.done.items():
                fh.write(json.dumps({"key": key, "output": output}, ensure_ascii=False) + "\n")

    def note_batch(self, batch_id: str, keys: list[str]) -> None:
        """The batch that runs the lines ``keys`` (in its items' order), for a rerun to resume."""
        self.batch = (batch_id, list(keys))
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"batch_id": batch_id, "keys": keys}) + "\n")

    def add(self, key: str, output: dict[str, Any]) -> None:
        self.done[key] = output
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"key": key, "output": output}, ensure_ascii=False) + "\n")
