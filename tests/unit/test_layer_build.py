"""The runtime layer as ``sam build`` builds it (layers/longform_core/Makefile), into a temp dir.

It must hold the package and what the runtime lacks (Powertools with Tracer, httpx, pydantic for
python3.13 on arm64), leave out what the python3.13 runtime provides (boto3, botocore, ...), and
stay under 15 MB unzipped. Needs PyPI (as `make test` does to install itself).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIMIT_BYTES = 15 * 1000 * 1000
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")


def runtime_python() -> str:
    """python3.13 (the Lambda runtime's, as `make build` uses: pyenv's 3.13.0), else this interpreter."""
    candidates = []
    pyenv = shutil.which("pyenv")
    if pyenv:
        prefix = subprocess.run(  # noqa: S603
            [pyenv, "prefix", "3.13.0"], capture_output=True, text=True, check=False
        ).stdout.strip()
        candidates.append(str(Path(prefix, "bin", "python3.13")) if prefix else "")
    candidates.append(shutil.which("python3.13") or "")
    for candidate in filter(None, candidates):
        # a pyenv shim of a version that is not selected exists but does not run
        if subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False).returncode == 0:  # noqa: S603
            return candidate
    return sys.executable


PYTHON = runtime_python()
IS_313 = (
    subprocess.run(  # noqa: S603
        [PYTHON, "-c", "import sys; sys.exit(sys.version_info[:2] != (3, 13))"], check=False
    ).returncode
    == 0
)


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("layer")
    subprocess.run(  # noqa: S603
        ["make", "-s", "-C", str(ROOT / "layers" / "longform_core"), "build-RuntimeLayer",  # noqa: S607
         f"ARTIFACTS_DIR={out}", f"LAYER_PYTHON={PYTHON}"],
        check=True,
        timeout=600,
    )  # fmt: skip
    return out / "python"


@pytest.mark.skipif(not IS_313, reason="needs python3.13 (the runtime's) to compile the layer's bytecode")
def test_with_the_runtimes_python_the_layer_ships_bytecode(layer: Path) -> None:
    # the dependencies as bytecode only (Lambda's /opt is read-only: sources would compile at
    # every cold start), longform_core as sources plus bytecode
    assert (layer / "httpx" / "__init__.pyc").is_file()
    assert not (layer / "httpx" / "__init__.py").exists()
    assert (layer / "longform_core" / "chunk.py").is_file()
    assert list((layer / "longform_core" / "__pycache__").glob("chunk.cpython-313.pyc"))
    assert not list(layer.glob("aws_lambda_powertools/event_handler/openapi/swagger_ui/*.js"))


def test_the_layer_holds_the_package_and_what_the_runtime_lacks(layer: Path) -> None:
    names = ("longform_core", "aws_lambda_powertools", "aws_xray_sdk", "wrapt", "httpx", "pydantic_core")
    for name in (*names, "jinja2", "markupsafe"):
        assert (layer / name).is_dir(), name
    assert (layer / "longform_core" / "chunk.py").is_file()
    # the arm64 build of the compiled dependencies, whatever the build machine is
    assert list((layer / "pydantic_core").glob("*cpython-313-aarch64-linux-gnu.so"))


def test_the_layer_leaves_out_what_the_runtime_provides(layer: Path) -> None:
    present = [name for name in RUNTIME_PROVIDED if (layer / name).exists()]
    assert present == []
    assert not list(layer.glob("botocore-*.dist-info"))


def test_the_layer_is_under_15_mb_unzipped(layer: Path) -> None:
    size = sum(f.stat().st_size for f in layer.rglob("*") if f.is_file())
    assert size < LIMIT_BYTES, f"{size / 1e6:.1f} MB"
