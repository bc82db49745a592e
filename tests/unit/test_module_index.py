"""Every module is in the indexes a reader uses (issue 17): ``docs/architecture.md`` has a row for
each module of the layer and of ``src/longform``, and ``longform_core/__init__.py`` lists every module
of the layer package, so neither index can drift from the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
LAYER = ROOT / "layers" / "longform_core" / "longform_core"
PACKAGES = (LAYER, ROOT / "src" / "longform")


def modules(package: Path) -> list[str]:
    """The modules of a package as paths relative to it (``batch/submit.py``), packages' own
    ``__init__``/``__main__`` left out."""
    return sorted(
        p.relative_to(package).as_posix()
        for p in package.rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    )


def named_in_architecture(module: str, text: str, rows: list[str]) -> bool:
    """A module is named by its path in backticks, or by its bare name in its folder's own row
    (``| `api/` | ... `routes.py` ...``)."""
    if f"`{module}`" in text:
        return True
    folder, _, name = module.rpartition("/")
    if not folder:
        return False
    stem = name.removesuffix(".py")
    folder_rows = [r for r in rows if r.startswith(f"| `{folder}/`")]
    return any(f"`{name}`" in r or f"`{stem}`" in r or f"`{stem} " in r for r in folder_rows) or any(
        f"`{folder}/" in r and f"`{name}`" in r for r in rows
    )


def test_every_module_has_a_row_in_the_architecture_doc() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    missing = [
        f"{package.name}/{module}"
        for package in PACKAGES
        for module in modules(package)
        if not named_in_architecture(module, text, rows)
    ]
    assert not missing, f"docs/architecture.md has no row naming: {missing}"


def test_the_check_sees_a_module_with_no_row() -> None:
    rows = ["| `api/` | `routes.py` (the routes) |", "| `chunk.py` | the use case |"]
    text = "\n".join(rows)
    assert named_in_architecture("api/routes.py", text, rows)
    assert named_in_architecture("chunk.py", text, rows)
    assert not named_in_architecture("api/schemas.py", text, rows)
    assert not named_in_architecture("chunk_ask.py", text, rows)


def listed_in_package_docstring() -> set[str]:
    doc = ast.get_docstring(ast.parse((LAYER / "__init__.py").read_text(encoding="utf-8"))) or ""
    return set(re.findall(r"^- ``([\w/.]+)``", doc, flags=re.MULTILINE))


def test_the_layer_package_lists_every_module_and_nothing_else() -> None:
    listed = listed_in_package_docstring()
    real = {m.removesuffix(".py") for m in modules(LAYER)}
    assert not real - listed, f"longform_core/__init__.py does not list: {sorted(real - listed)}"
    assert not listed - real, (
        f"longform_core/__init__.py lists modules that do not exist: {sorted(listed - real)}"
    )
