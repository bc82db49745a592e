"""The runtime layer as ``sam build`` builds it (layers/longform_core/Makefile), into a temp dir.

It must hold the package and what the runtime lacks (Powertools with Tracer, httpx, pydantic for
python3.13 on arm64), leave out what the python3.13 runtime provides (boto3, botocore, ...), and
stay under 15 MB unzipped. Needs PyPI (as `make test` does to install itself).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIMIT_BYTES = 15 * 1000 * 1000
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("layer")
    subprocess.run(  # noqa: S603
        ["make", "-s", "-C", str(ROOT / "layers" / "longform_core"), "build-RuntimeLayer",  # noqa: S607
         f"ARTIFACTS_DIR={out}", f"LAYER_PYTHON={sys.executable}"],
        check=True,
        timeout=600,
    )  # fmt: skip
    return out / "python"


def test_the_layer_holds_the_package_and_what_the_runtime_lacks(layer: Path) -> None:
    for name in ("longform_core", "aws_lambda_powertools", "aws_xray_sdk", "wrapt", "httpx", "pydantic_core"):
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
