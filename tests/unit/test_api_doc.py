"""docs/api.md's request format names every field a request may have (``GenerationRequest``), and
nothing else: a field added to the model without a row in the table fails here."""

from __future__ import annotations

import re
from pathlib import Path

from longform_core.request import GenerationRequest

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def request_table_fields(text: str) -> set[str]:
    section = text.split("## The request format", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}


def test_the_request_table_names_every_field_of_a_request() -> None:
    assert request_table_fields(DOC_PATH.read_text(encoding="utf-8")) == set(GenerationRequest.model_fields)


def test_the_check_sees_a_missing_and_an_unknown_field() -> None:
    doc = (
        "## The request format\n\n| field | meaning |\n| --- | --- |\n| `model`, `promt` | ... |\n\n## Next\n"
    )
    assert request_table_fields(doc) == {"model", "promt"}
