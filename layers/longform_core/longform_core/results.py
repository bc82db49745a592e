"""``results/``: the drop folders' answers. Every ``results/{name}.*`` key is built here, and only here.

Two drop folders answer into one folder, by the name of what was dropped::

    requests/{name}.json|.txt|.md   results/{name}.md            the answer (finalize)
                                    results/{name}.json          the job's result.json
                                    results/{name}.error.json    a bad request: every problem
    batches/{name}.jsonl            results/{name}.jsonl         the output (a copy of output.jsonl)
                                    results/{name}.batch.json    the batch's summary
                                    results/{name}.batch-error.json  a bad batch: every bad line

The six suffixes are distinct, so a request and a batch dropped under the same name never touch
each other's files: a good ``requests/x.json`` deletes only ``results/x.error.json``, never the
``results/x.batch-error.json`` a bad ``batches/x.jsonl`` wrote (both were ``x.error.json`` once).
A name that itself ends in one of the suffixes (``requests/x.batch.json``, name ``x.batch``) can
still meet another name's files; pick names without them.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from .objects import JSON, Objects

RESULTS_PREFIX = "results/"
MARKDOWN = "text/markdown; charset=utf-8"
JSONL = "application/jsonl"


class ResultKeys:
    """Every key of the answers to one drop-folder name (``{name}`` keeps nested folders)."""

    def __init__(self, name: str):
        base = f"{RESULTS_PREFIX}{name}"
        # requests/{name}.*
        self.output = f"{base}.md"
        self.result = f"{base}.json"
        self.error = f"{base}.error.json"
        # batches/{name}.jsonl
        self.batch_output = f"{base}.jsonl"
        self.batch_summary = f"{base}.batch.json"
        self.batch_error = f"{base}.batch-error.json"

    def all(self) -> tuple[str, ...]:
        return (
            self.output,
            self.result,
            self.error,
            self.batch_output,
            self.batch_summary,
            self.batch_error,
        )


class Results:
    """Writes and deletes the drop folders' answers (``JobStore.results``, ``BatchStore.results``)."""

    def __init__(self, objects: Objects):
        self.objects = objects

    # ---- requests/{name}.* ------------------------------------------------------------------

    def write_job(self, name: str, *, answer: str, result: BaseModel) -> None:
        """``results/{name}.md`` and ``results/{name}.json`` (finalize)."""
        keys = ResultKeys(name)
        self.objects.put(keys.output, answer.encode(), MARKDOWN)
        self.objects.put(keys.result, result.model_dump_json(indent=1).encode(), JSON)

    def write_job_error(self, name: str, body: dict[str, Any]) -> str:
        """``results/{name}.error.json``: every problem of a request that started nothing."""
        return self._write_json(ResultKeys(name).error, body)

    def delete_job_error(self, name: str) -> None:
        """An earlier, bad request under this name left an error file: it no longer applies."""
        self.objects.delete(ResultKeys(name).error)

    # ---- batches/{name}.jsonl ---------------------------------------------------------------

    def write_batch(self, name: str, *, output_key: str, summary: BaseModel) -> None:
        """``results/{name}.jsonl`` (a server-side copy of ``output_key``) and ``.batch.json``."""
        keys = ResultKeys(name)
        self.objects.copy(output_key, keys.batch_output, JSONL)
        self.objects.put(keys.batch_summary, summary.model_dump_json(indent=1).encode(), JSON)

    def write_batch_error(self, name: str, body: dict[str, Any]) -> str:
        """``results/{name}.batch-error.json``: every bad line of a batch that started nothing."""
        return self._write_json(ResultKeys(name).batch_error, body)

    def delete_batch_error(self, name: str) -> None:
        """An earlier, bad batch under this name left an error file: it no longer applies."""
        self.objects.delete(ResultKeys(name).batch_error)

    def _write_json(self, key: str, body: dict[str, Any]) -> str:
        self.objects.put(key, json.dumps(body, indent=1).encode(), JSON)
        return key
