"""Readable views of a job for the API client commands (``submit``, ``status``, ``cancel``): the
same two columns as ``longform show``; ``--json`` prints the API's JSON instead."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from longform.local.terminal import print_table


def job_rows(view: dict[str, Any], *, api: str) -> list[tuple[str, str]]:
    """Rows of a job view (``GET /generations/{id}``) or an accepted submission (202)."""
    job_id = str(view.get("job_id", "?"))
    progress = view.get("progress") or {}
    rows = [("job", job_id), ("status", str(view.get("status", "?")))]
    if view.get("model"):
        rows.append(("model", str(view["model"])))
    if progress:
        rows.append(("chunks", str(progress.get("chunks", 0))))
        rows.append(("output tokens", f"{int(progress.get('output_tokens') or 0):,}"))
    if view.get("output_chars") is not None:
        rows.append(("characters", f"{int(view['output_chars']):,}"))
    draft = view.get("draft") or {}
    if draft.get("tokens"):
        rows.append(("in flight", f"{int(draft['tokens']):,} tokens in the chunk being generated"))
    if view.get("stop_reason"):
        rows.append(("stop", f"{view['stop_reason']} (finish: {view.get('finish_reason') or '-'})"))
    if view.get("error"):
        rows.append(("error", str(view["error"])))
    flag = "" if api == "http://127.0.0.1:8787" else f" --api {api}"
    rows.append(("output", f"longform output {job_id}{flag} (--follow while it runs)"))
    return rows


def print_view(view: Any, *, as_json: bool, api: str, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    if as_json or not isinstance(view, dict):
        out.write(json.dumps(view, indent=2, default=str) + "\n")
        return
    print_table(job_rows(view, api=api), out)
