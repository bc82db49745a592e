"""The local stack's start: what it no longer does (issue 16, first text within 2 s).

- moto's Step Functions interpreter imports ``moto.batch.utils``, and with the package's
  ``__init__`` moto's whole EC2 model: ``aws.defer_package_init`` registers the package without it
  until an attribute of it is asked for.
- A wired definition moto's parser accepted before is not validated again
  (``provision.ValidatedDefinitions``); a new or invalid one is.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from longform.local.aws import REGION, defer_package_init
from longform.local.provision import ValidatedDefinitions

ROOT = Path(__file__).resolve().parents[2]


def test_a_deferred_package_runs_its_init_on_the_first_attribute_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "deferred_pkg_i16"
    package.mkdir()
    marker = tmp_path / "init-ran"
    (package / "__init__.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\nVALUE = 42\n", encoding="utf-8"
    )
    (package / "sub.py").write_text("X = 1\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        defer_package_init("deferred_pkg_i16")
        import deferred_pkg_i16.sub  # type: ignore[import-not-found]

        assert deferred_pkg_i16.sub.X == 1
        assert not marker.exists(), "importing a submodule ran the package's __init__"
        from deferred_pkg_i16 import VALUE  # type: ignore[import-not-found]

        assert VALUE == 42 and marker.read_text() == "ran"
    finally:
        for name in ("deferred_pkg_i16", "deferred_pkg_i16.sub"):
            sys.modules.pop(name, None)


def test_the_local_stack_starts_without_moto_ec2_and_moto_batch_still_works() -> None:
    """In a fresh interpreter (this one may have imported moto's EC2 already)."""
    code = textwrap.dedent(
        """
        import contextlib, sys
        from longform.local.aws import start_moto
        with contextlib.ExitStack() as stack:
            start_moto(stack, on_invoke=lambda *a: b"", on_async_invoke=lambda *a: None)
            print("ec2 at start:", "moto.ec2" in sys.modules)
            import boto3
            batch = boto3.client("batch", region_name="us-east-1")
            print("batch works:", batch.describe_compute_environments()["computeEnvironments"] == [])
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ec2 at start: False" in done.stdout and "batch works: True" in done.stdout, done.stdout


DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
ROLE = "arn:aws:iam::123456789012:role/longform-local"


def _validations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    seen: list[str] = []
    real = StepFunctionsParserBackend._validate_definition

    def counted(definition: str) -> None:
        seen.append(definition)
        real(definition)

    monkeypatch.setattr(StepFunctionsParserBackend, "_validate_definition", staticmethod(counted))
    return seen


@mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
def test_a_definition_accepted_before_is_not_validated_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _validations(monkeypatch)
    sfn = boto3.client("stepfunctions", region_name=REGION)
    cache = tmp_path / "cache" / "validated-asl"
    with ValidatedDefinitions(cache).creating(DEFINITION):
        sfn.create_state_machine(name="a", definition=DEFINITION, roleArn=ROLE)
    assert len(seen) == 1 and cache.read_text().split() == [ValidatedDefinitions.key(DEFINITION)]
    # the next start (a new object reads the file): the same definition is not parsed at creation
    again = ValidatedDefinitions(cache)
    assert DEFINITION in again
    with again.creating(DEFINITION):
        sfn.create_state_machine(name="b", definition=DEFINITION, roleArn=ROLE)
    assert len(seen) == 1
    # another definition is validated, and an invalid one fails as before and is not remembered
    other = DEFINITION.replace("Done", "End")
    with again.creating(other):
        sfn.create_state_machine(name="c", definition=other, roleArn=ROLE)
    assert len(seen) == 2
    invalid = json.dumps({"StartAt": "Nowhere", "States": {"Done": {"Type": "Bogus"}}})
    with pytest.raises(ClientError, match="ASLParserException"), again.creating(invalid):
        sfn.create_state_machine(name="d", definition=invalid, roleArn=ROLE)
    assert invalid not in ValidatedDefinitions(cache)
    assert len(cache.read_text().split()) == 2
