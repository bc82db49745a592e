"""What CloudFormation would create from ``template.yaml``, created on moto: the bucket, the role,
the functions, both state machines (every ``${...}`` from the template's
``DefinitionSubstitutions``), the secret and the template's EventBridge rules.

One owner of the resource names and of the wiring, for both local stacks: the in-process local
cloud (``cloud.py``, the functions run by ``lambda_runtime.py``) and ``make sam-local``
(``samlocal/local_aws.py``, the functions run by SAM CLI's containers). It imports neither of them
(nor ``batch.py``), so none of those imports another through it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .template import FunctionSpec, event_rules, state_machine_wiring

BUCKET = "longform-local-jobs"
STATE_MACHINE = "GenerationStateMachine"
STATE_MACHINE_NAME = "longform-generation"
BATCH_STATE_MACHINE = "BatchStateMachine"
BATCH_STATE_MACHINE_NAME = "longform-batch"
SECRET_NAME = "longform/provider-api-key"  # noqa: S105 - a name, not a secret
ROLE_NAME = "longform-local"


def create_role(iam: Any, *, name: str = ROLE_NAME, services: tuple[str, ...] | None = None) -> str:
    """The execution role the functions and state machines name (moto checks it exists)."""
    principals = list(services or ("lambda.amazonaws.com", "states.amazonaws.com"))
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": principals}, "Action": "sts:AssumeRole"}],
    }
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    return str(role["Role"]["Arn"])


def create_functions(
    lam: Any, specs: Mapping[str, FunctionSpec], role_arn: str, timeout_for: Callable[[str], float]
) -> dict[str, str]:
    """The template's functions, by logical id (their code is a placeholder: the local runtime
    dispatches every invocation in-process); their ARNs."""
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("app.py", "# dispatched in-process by longform.local.lambda_runtime\n")
    return {
        logical_id: lam.create_function(
            FunctionName=logical_id,
            Runtime="python3.13",
            Role=role_arn,
            Handler=spec.handler,
            Code={"ZipFile": zipped.getvalue()},
            Timeout=int(timeout_for(logical_id)) or 1,
            Architectures=["arm64"],
        )["FunctionArn"]
        for logical_id, spec in specs.items()
    }


def wired_definition(
    root: Path, template: dict[str, Any], logical_id: str, targets: Mapping[str, str]
) -> str:
    """The state machine ``logical_id``'s ASL file with every ``${...}`` resolved as the template
    wires it (``targets``: what each logical id it names resolves to)."""
    definition_uri, wiring = state_machine_wiring(template, logical_id)
    definition = (root / definition_uri).read_text(encoding="utf-8")
    for key, target in wiring.items():
        definition = definition.replace("${" + key + "}", targets[target])
    return definition


class ValidatedDefinitions:
    """The wired definitions moto's ASL parser has already accepted, remembered in the state
    directory (``cache/validated-asl``: one SHA-256 a line, of moto's version and the definition).

    moto validates a definition by parsing it (its ANTLR parser in pure Python: about 0.2 s for each
    of the two workflows on a quiet machine, seconds under load) when the state machine is created,
    and parses it again to run an execution. A definition it accepted before is not validated
    again at the next start: it is the same text for the same parser, and a definition that no
    longer parsed would still fail, at its execution's start. ``path`` None: nothing remembered."""

    def __init__(self, path: Path | None):
        self.path = path
        self._known: set[str] | None = None

    @staticmethod
    def key(definition: str) -> str:
        from moto import __version__ as moto_version

        return hashlib.sha256(f"{moto_version}\n{definition}".encode()).hexdigest()

    def known(self) -> set[str]:
        if self._known is None:
            self._known = set()
            if self.path is not None:
                with contextlib.suppress(OSError, UnicodeDecodeError):
                    self._known = set(self.path.read_text(encoding="utf-8").split())
        return self._known

    def __contains__(self, definition: str) -> bool:
        return self.key(definition) in self.known()

    def add(self, definition: str) -> None:
        known = self.known()
        known.add(self.key(definition))
        if self.path is None:
            return
        with contextlib.suppress(OSError):  # a cache: a read-only or full disk only costs time
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            tmp.write_text("\n".join(sorted(known)) + "\n", encoding="utf-8")
            tmp.replace(self.path)

    @contextlib.contextmanager
    def creating(self, definition: str) -> Iterator[None]:
        """Around ``create_state_machine``: moto's validation skipped for a known definition,
        remembered for a new one once moto accepted it."""
        if definition not in self:
            yield
            self.add(definition)
            return
        from unittest import mock

        from moto.stepfunctions.parser.models import StepFunctionsParserBackend

        def accepted(definition: str) -> None:
            return None

        with mock.patch.object(StepFunctionsParserBackend, "_validate_definition", staticmethod(accepted)):
            yield


def create_state_machine(
    sfn: Any,
    root: Path,
    template: dict[str, Any],
    *,
    logical_id: str,
    name: str,
    role_arn: str,
    targets: Mapping[str, str],
    validated: ValidatedDefinitions | None = None,
) -> str:
    definition = wired_definition(root, template, logical_id, targets)
    with (validated or ValidatedDefinitions(None)).creating(definition):
        created = sfn.create_state_machine(
            name=name, definition=definition, roleArn=role_arn, type="STANDARD"
        )
    return str(created["stateMachineArn"])


@dataclass
class Stack:
    """What was created: the ARNs the template's ``!Ref``/``!GetAtt`` resolve to."""

    role_arn: str
    function_arns: dict[str, str]
    state_machine_arn: str = ""
    batch_state_machine_arn: str = ""
    secret_arn: str | None = None
    extra_refs: dict[str, str] = field(default_factory=dict)

    def refs(self) -> dict[str, str]:
        """What ``!Ref`` of the template's resources resolves to locally."""
        return {
            "JobsBucket": BUCKET,
            STATE_MACHINE: self.state_machine_arn,
            BATCH_STATE_MACHINE: self.batch_state_machine_arn,
            **self.extra_refs,
        }

    def targets(self) -> dict[str, str]:
        """What a state machine's ``DefinitionSubstitutions`` may name: functions and the others."""
        return {**self.function_arns, **self.refs()}


def create_state_machines(
    sfn: Any,
    root: Path,
    template: dict[str, Any],
    stack: Stack,
    validated: ValidatedDefinitions | None = None,
) -> None:
    """The generation workflow, then the batch workflow (which starts executions of the first)."""
    for logical_id, name, attribute in (
        (STATE_MACHINE, STATE_MACHINE_NAME, "state_machine_arn"),
        (BATCH_STATE_MACHINE, BATCH_STATE_MACHINE_NAME, "batch_state_machine_arn"),
    ):
        arn = create_state_machine(
            sfn, root, template, logical_id=logical_id, name=name, role_arn=stack.role_arn,
            targets=stack.targets(), validated=validated,
        )  # fmt: skip
        setattr(stack, attribute, arn)


def create_event_rules(s3: Any, events: Any, template: dict[str, Any], stack: Stack) -> None:
    """The template's rules that target its functions, and the bucket's events to EventBridge."""
    bucket = (template.get("Resources") or {}).get("JobsBucket", {}).get("Properties") or {}
    eventbridge = (bucket.get("NotificationConfiguration") or {}).get("EventBridgeConfiguration") or {}
    if eventbridge.get("EventBridgeEnabled"):
        s3.put_bucket_notification_configuration(
            Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
    for rule in event_rules(template):
        pattern = resolve_refs(rule.event_pattern, stack.refs())
        events.put_rule(Name=rule.logical_id, EventPattern=json.dumps(pattern), State="ENABLED")
        events.put_targets(
            Rule=rule.logical_id,
            Targets=[{"Id": name, "Arn": stack.function_arns[name]} for name in rule.functions],
        )


def resolve_refs(node: Any, refs: Mapping[str, str]) -> Any:
    """``{"Ref": name}`` -> ``refs[name]`` throughout a template fragment."""
    if isinstance(node, dict):
        if set(node) == {"Ref"} and node["Ref"] in refs:
            return refs[node["Ref"]]
        return {k: resolve_refs(v, refs) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_refs(v, refs) for v in node]
    return node
