"""Reading template.yaml (CloudFormation short tags included) for the local runner and tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class _Tagged(dict[str, Any]):
    pass


def _make_constructor(tag: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = str(value).split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        key = "Ref" if tag == "Ref" else f"Fn::{tag}"
        return {key: value}

    return construct


# libyaml's parser when PyYAML has it (about twenty times faster than the pure-Python one: the
# template is read at every start of the local stack), the same safe constructors either way
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CfnLoader(_SafeLoader):  # type: ignore[misc]
    """A YAML loader for CloudFormation short tags.

    ``!Ref x`` becomes ``{"Ref": "x"}``, ``!GetAtt a.b`` becomes ``{"Fn::GetAtt": [a, b]}``, and so on.
    """


for _tag in (
    "Ref", "GetAtt", "Sub", "If", "Equals", "Not", "And", "Or", "Select", "Join", "Split",
    "FindInMap", "ImportValue", "GetAZs", "Base64", "Condition", "Cidr", "ToJsonString",
):  # fmt: skip
    CfnLoader.add_constructor(f"!{_tag}", _make_constructor(_tag))


def load_template(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a CloudFormation template")
    return data


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_uri: str
    handler: str
    timeout_seconds: int
    memory_mb: int


def _resolve(value: Any, parameters: dict[str, Any], default: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"Ref"}:
        param = parameters.get(value["Ref"], {})
        return param.get("Default", default) if isinstance(param, dict) else default
    return default if value is None else value


def function_specs(template: dict[str, Any]) -> dict[str, FunctionSpec]:
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    params = template.get("Parameters") or {}
    specs: dict[str, FunctionSpec] = {}
    for logical_id, res in (template.get("Resources") or {}).items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        props = res.get("Properties") or {}
        timeout = _resolve(props.get("Timeout", globals_fn.get("Timeout")), params, 3)
        memory = _resolve(props.get("MemorySize", globals_fn.get("MemorySize")), params, 128)
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            code_uri=str(props["CodeUri"]),
            handler=str(props.get("Handler", globals_fn.get("Handler", "app.lambda_handler"))),
            timeout_seconds=int(timeout),
            memory_mb=int(memory),
        )
    return specs


def state_machine_wiring(
    template: dict[str, Any], logical_id: str = "GenerationStateMachine"
) -> tuple[str, dict[str, str]]:
    """(DefinitionUri, {substitution key: logical id of the function or state machine}) of one state
    machine of the template (the generation workflow unless ``logical_id`` names another)."""
    res = (template.get("Resources") or {}).get(logical_id)
    if not res or res.get("Type") != "AWS::Serverless::StateMachine":
        raise ValueError(f"template.yaml has no AWS::Serverless::StateMachine {logical_id}")
    props = res["Properties"]
    wiring: dict[str, str] = {}
    for key, value in (props.get("DefinitionSubstitutions") or {}).items():
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            wiring[key] = value["Fn::GetAtt"][0]
        elif isinstance(value, dict) and "Ref" in value:
            wiring[key] = value["Ref"]
    return str(props["DefinitionUri"]), wiring


@dataclass(frozen=True)
class EventRuleSpec:
    """An ``AWS::Events::Rule`` of the template whose targets are functions of the template."""

    logical_id: str
    event_pattern: dict[str, Any]  # as written: intrinsic functions (e.g. !Ref JobsBucket) unresolved
    functions: tuple[str, ...]  # logical ids of the target functions


def event_rules(template: dict[str, Any]) -> list[EventRuleSpec]:
    resources = template.get("Resources") or {}
    rules: list[EventRuleSpec] = []
    for logical_id, res in resources.items():
        if res.get("Type") != "AWS::Events::Rule":
            continue
        props = res.get("Properties") or {}
        targets = tuple(
            target["Arn"]["Fn::GetAtt"][0]
            for target in props.get("Targets") or []
            if isinstance(target.get("Arn"), dict)
            and "Fn::GetAtt" in target["Arn"]
            and resources.get(target["Arn"]["Fn::GetAtt"][0], {}).get("Type") == "AWS::Serverless::Function"
        )
        if targets and isinstance(props.get("EventPattern"), dict):
            rules.append(EventRuleSpec(logical_id, props["EventPattern"], targets))
    return rules


def function_environment(
    template: dict[str, Any], *, refs: dict[str, str], parameters: dict[str, str] | None = None
) -> dict[str, str]:
    """The functions' environment as the template sets it: Globals plus every function's own.

    ``!Ref`` of a parameter resolves to ``parameters`` or else the parameter's ``Default``; ``!Ref``
    of a resource to ``refs``. A variable whose value cannot be resolved here is left out.
    """
    params = template.get("Parameters") or {}
    given = parameters or {}
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    blocks = [((globals_fn.get("Environment") or {}).get("Variables") or {})]
    for res in (template.get("Resources") or {}).values():
        if res.get("Type") == "AWS::Serverless::Function":
            blocks.append(((res.get("Properties") or {}).get("Environment") or {}).get("Variables") or {})
    env: dict[str, str] = {}
    for block in blocks:
        for name, value in block.items():
            resolved = _env_value(value, params, given, refs)
            if resolved is not None:
                env[name] = resolved
    return env


def _env_value(value: Any, params: dict[str, Any], given: dict[str, str], refs: dict[str, str]) -> str | None:
    if not isinstance(value, dict):
        return str(value).lower() if isinstance(value, bool) else str(value)
    if set(value) != {"Ref"}:
        return None
    name = value["Ref"]
    if name in given:
        return given[name]
    if name in refs:
        return refs[name]
    param = params.get(name)
    if isinstance(param, dict) and "Default" in param:
        return str(param["Default"])
    return None
