"""Static checks of template.yaml against the workflow, the code on disk and the security rules.

cfn-lint cannot see a wrong ``!GetAtt`` inside ``DefinitionSubstitutions`` or a handler that does not
exist; these tests can, offline and in milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"

FUNCTION_TYPES = {"AWS::Serverless::Function", "AWS::Lambda::Function"}
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
SUB_VARIABLE = re.compile(r"\$\{(?!!)([A-Za-z0-9_:]+)(?:\.[A-Za-z0-9_.]+)?\}")


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    res: dict[str, Any] = template["Resources"]
    return res


STATE_MACHINES = ("GenerationStateMachine", "BatchStateMachine")


def test_the_state_machines_are_the_generation_and_the_batch_workflow(resources: dict[str, Any]) -> None:
    machines = {n for n, r in resources.items() if r["Type"] == "AWS::Serverless::StateMachine"}
    assert machines == set(STATE_MACHINES)


@pytest.fixture(scope="module", params=STATE_MACHINES)
def state_machine(resources: dict[str, Any], request: pytest.FixtureRequest) -> dict[str, Any]:
    machine: dict[str, Any] = resources[request.param]["Properties"]
    return machine


@pytest.fixture(scope="module")
def asl_text(state_machine: dict[str, Any]) -> str:
    return (ROOT / state_machine["DefinitionUri"]).read_text()


# ---- helpers -------------------------------------------------------------------------------------


def functions(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in resources.items() if r["Type"] in FUNCTION_TYPES}


def function_properties(template: dict[str, Any], name: str) -> dict[str, Any]:
    """The function's properties with SAM's Globals.Function applied (maps merge, the rest defaults)."""
    merged: dict[str, Any] = dict(template.get("Globals", {}).get("Function", {}))
    for key, value in template["Resources"][name].get("Properties", {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def referenced_resource(value: Any) -> str:
    """The logical id behind ``!GetAtt X.Arn`` or ``!Ref X``."""
    assert isinstance(value, dict), f"not an intrinsic reference: {value!r}"
    assert len(value) == 1, f"not an intrinsic reference: {value!r}"
    if "Ref" in value:
        return str(value["Ref"])
    getatt = value.get("Fn::GetAtt")
    assert getatt is not None, f"expected !GetAtt or !Ref, got {value!r}"
    name, attribute = getatt if isinstance(getatt, list) else getatt.split(".", 1)
    assert attribute == "Arn", f"{name}.{attribute}: a Lambda task needs the function's Arn"
    return str(name)


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def names_used(node: Any) -> set[str]:
    """Every name a !Ref, !Sub, !GetAtt, !FindInMap or Condition key in ``node`` refers to."""
    used: set[str] = set()
    for item in walk(node):
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("Ref"), str):
            used.add(item["Ref"])
        if isinstance(item.get("Condition"), str):
            used.add(item["Condition"])
        sub = item.get("Fn::Sub")
        if sub is not None:
            text = sub if isinstance(sub, str) else sub[0]
            used.update(SUB_VARIABLE.findall(text))
        if "Fn::GetAtt" in item:
            getatt = item["Fn::GetAtt"]
            used.add(getatt[0] if isinstance(getatt, list) else getatt.split(".", 1)[0])
        if "Fn::If" in item:
            used.add(item["Fn::If"][0])
    return used


def policy_statements(policies: list[Any]) -> Iterator[tuple[dict[str, Any], str | None]]:
    """(statement, condition name or None) for every inline Statement of a SAM Policies list."""
    for entry in policies:
        condition, policy = None, entry
        if isinstance(entry, dict) and "Fn::If" in entry:
            condition, policy, _ = entry["Fn::If"]
        if isinstance(policy, dict) and "Statement" in policy:
            for statement in policy["Statement"]:
                yield statement, condition


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ---- the workflow and its functions --------------------------------------------------------------


def test_asl_placeholders_match_definition_substitutions(
    state_machine: dict[str, Any], asl_text: str
) -> None:
    placeholders = set(PLACEHOLDER.findall(asl_text))
    substitutions = set(state_machine["DefinitionSubstitutions"])
    assert placeholders, "the ASL references no function at all"
    assert placeholders - substitutions == set(), "placeholders without a DefinitionSubstitutions key"
    assert substitutions - placeholders == set(), "DefinitionSubstitutions keys the ASL never uses"


def test_substitutions_resolve_to_functions_whose_handlers_exist(
    resources: dict[str, Any], state_machine: dict[str, Any], template: dict[str, Any]
) -> None:
    for key, value in state_machine["DefinitionSubstitutions"].items():
        name = referenced_resource(value)
        assert name in resources, f"{key} refers to {name}, which is not in the template"
        if key.endswith("StateMachineArn"):  # the batch workflow runs the generation workflow
            assert resources[name]["Type"] == "AWS::Serverless::StateMachine", key
            assert value == {"Ref": name}, key
            continue
        if key.endswith("BucketName"):  # the Distributed Map's ResultWriter bucket
            assert value == {"Ref": "JobsBucket"}, key
            continue
        assert resources[name]["Type"] in FUNCTION_TYPES, f"{key} refers to {name}, not a Lambda function"
        props = function_properties(template, name)
        code_dir = ROOT / props["CodeUri"]
        module, _, symbol = props["Handler"].rpartition(".")
        handler_file = code_dir / (module.replace(".", "/") + ".py")
        assert handler_file.is_file(), f"{name}: handler module {handler_file} does not exist"
        source = handler_file.read_text()
        assert re.search(rf"^(?:async\s+)?def\s+{symbol}\s*\(|^{symbol}\s*=", source, re.MULTILINE), (
            f"{name}: {handler_file} defines no {symbol}"
        )


def test_every_function_is_python313_on_arm64_with_the_layer(
    resources: dict[str, Any], template: dict[str, Any]
) -> None:
    assert functions(resources)
    for name in functions(resources):
        props = function_properties(template, name)
        assert props["Runtime"] == "python3.13", name
        assert props["Architectures"] == ["arm64"], name
        assert props["Handler"] == "app.lambda_handler", name
        assert {"Ref": "RuntimeLayer"} in props["Layers"], name
        assert props["Tracing"] == "Active", name


def test_chunk_function_timeout_comes_from_the_parameter(template: dict[str, Any]) -> None:
    props = function_properties(template, "GenerateChunkFunction")
    assert props["Timeout"] == {"Ref": "ChunkTimeoutSeconds"}
    params = template["Parameters"]
    assert params["ChunkTimeoutSeconds"]["MaxValue"] == 900
    # the margin can never swallow the whole invocation
    assert params["DeadlineMarginSeconds"]["MaxValue"] < params["ChunkTimeoutSeconds"]["MinValue"]


def test_layer_builds_for_python313_arm64_without_dev_packages(resources: dict[str, Any]) -> None:
    layer = resources["RuntimeLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    # a makefile build (layers/longform_core/Makefile): what the python3.13 runtime provides is left out
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Metadata"]["BuildArchitecture"] == "arm64"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    content = ROOT / layer["Properties"]["ContentUri"]
    assert (content / "longform_core" / "__init__.py").is_file()
    assert "build-RuntimeLayer:" in (content / "Makefile").read_text()
    requirements = (content / "requirements.txt").read_text().splitlines()
    names = {
        re.split(r"[\s\[<>=!~;]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")
        for line in requirements
        if line.strip() and not line.lstrip().startswith(("#", "-"))
    }
    forbidden = {"pytest", "moto", "ruff", "mypy", "boto3", "botocore", "cfn-lint", "aws-sam-cli"}
    assert names & forbidden == set(), f"test/dev packages in the layer: {sorted(names & forbidden)}"
    assert not any(n.startswith(("pytest-", "types-", "boto3-stubs", "mypy-")) for n in names)


def test_state_machine_role_invokes_exactly_the_functions_of_the_asl(
    state_machine: dict[str, Any], asl_text: str
) -> None:
    used = set(PLACEHOLDER.findall(asl_text))
    asl_functions = {
        referenced_resource(value)
        for key, value in state_machine["DefinitionSubstitutions"].items()
        if key in used and key.endswith("FunctionArn")
    }
    invokable: set[str] = set()
    for policy in state_machine["Policies"]:
        assert isinstance(policy, dict), f"no managed policies on the state machine role: {policy!r}"
        if "LambdaInvokePolicy" in policy:
            invokable.add(referenced_resource(policy["LambdaInvokePolicy"]["FunctionName"]))
    for statement, _ in policy_statements(state_machine["Policies"]):
        actions = as_list(statement["Action"])
        assert not any(a.startswith("lambda:") or a == "*" for a in actions), statement
    assert invokable == asl_functions


# prefixes a function may touch besides jobs/: the drop folder reads requests/ and writes error
# files, finalize (and the API, whose cancel finalizes) writes the drop folder's results, the chunk
# function reads and writes the learned prefill styles
EXTRA_S3_PREFIXES: dict[str, tuple[str, ...]] = {
    "DropFolderFunction": ("requests/", "results/"),
    "FinalizeFunction": ("results/",),
    "SweeperFunction": ("results/",),  # it finalizes, as FinalizeFunction does
    "GenerateChunkFunction": ("styles/",),  # the prefill style learned per (base URL, model)
    # batches: their own files under batch-runs/; the API reads a file POST /batches names under
    # batch-inputs/; the batch drop folder reads batches/ and writes error files; the output writes
    # the drop folder's results/{name}.jsonl
    # and the files of OpenAI's Files API under openai-files/ (which it deletes too)
    "ApiFunction": ("results/", "batch-runs/", "batch-inputs/", "openai-files/"),
    "BatchSplitFunction": ("batch-runs/",),
    "BatchOutputFunction": ("batch-runs/", "results/"),
    "BatchDropFolderFunction": ("batches/", "batch-runs/", "results/"),
}
# the output is a multipart upload when large: aborting one that failed is the one extra action
EXTRA_S3_ACTIONS: dict[str, set[str]] = {"BatchOutputFunction": {"s3:AbortMultipartUpload"}}
# functions that touch no object at all: the API key authorizer only reads the request's headers
NO_S3 = {"ApiKeyAuthorizerFunction"}


def test_function_s3_access_is_confined_to_jobs_prefix(
    resources: dict[str, Any], template: dict[str, Any]
) -> None:
    for name in functions(resources):
        allowed = ("jobs/", *EXTRA_S3_PREFIXES.get(name, ()))
        props = function_properties(template, name)
        if name in NO_S3:
            assert props["Policies"] == [], name
            continue
        for policy in props["Policies"]:
            assert isinstance(policy, dict), f"{name}: no managed/string policies ({policy!r})"
            assert not {"S3CrudPolicy", "S3FullAccessPolicy", "S3ReadPolicy", "S3WritePolicy"} & set(policy)
        s3_statements = [
            s
            for s, _ in policy_statements(props["Policies"])
            if any(a.startswith("s3:") for a in as_list(s["Action"]))
        ]
        assert s3_statements, name
        for statement in s3_statements:
            actions = set(as_list(statement["Action"]))
            if statement["Effect"] == "Deny":  # a guard (test_template_security.py), never a grant
                assert actions == {"s3:ListBucket"}, name
                continue
            assert statement["Effect"] == "Allow"
            resource = statement["Resource"]["Fn::Sub"]
            if actions == {"s3:ListBucket"}:
                assert resource.endswith(":::${JobsBucket}"), name
                (operator,) = statement["Condition"]
                prefixes = statement["Condition"][operator]["s3:prefix"]
                assert operator in ("StringLike", "StringLikeIfExists", "StringEquals")
                assert all(p.startswith(allowed) for p in as_list(prefixes)), name
            else:
                path = resource.partition(":::${JobsBucket}/")[2]
                if path == "jobs/*/drafts/*" and name == "GenerateChunkFunction":
                    # the chunk function deletes the drafts its commit supersedes, and nothing else
                    assert actions == {"s3:DeleteObject"}, (name, actions)
                elif path == "styles/*" and name == "GenerateChunkFunction":
                    # a learned prefill style is read, written, and evicted when found wrong
                    # (style_probe.evict_style), and nothing else under styles/ exists
                    assert actions == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}, (name, actions)
                elif path == "results/*.error.json" and "results/" in allowed:
                    # the drop folder writes error files, and clears one a good request replaces
                    assert actions <= {"s3:PutObject", "s3:DeleteObject"}, (name, actions)
                else:
                    assert path in {f"{prefix}*" for prefix in allowed}, (name, path)
                    permitted = {"s3:GetObject", "s3:PutObject", *EXTRA_S3_ACTIONS.get(name, set())}
                    if path == "openai-files/*" and name == "ApiFunction":
                        permitted.add("s3:DeleteObject")  # DELETE /v1/files/{file_id}
                    assert actions <= permitted, (name, actions)


def test_secret_access_only_for_the_chunk_function_and_only_when_configured(
    resources: dict[str, Any], template: dict[str, Any]
) -> None:
    conditions = template["Conditions"]
    assert conditions["HasProviderApiKeySecret"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ProviderApiKeySecretArn"}, ""]}]
    }
    for name in functions(resources):
        props = function_properties(template, name)
        secret_statements = [
            (s, cond)
            for s, cond in policy_statements(props["Policies"])
            if any(a.startswith("secretsmanager:") for a in as_list(s["Action"]))
        ]
        if name != "GenerateChunkFunction":
            assert secret_statements == [], f"{name} must not read the provider key"
            continue
        assert len(secret_statements) == 1
        statement, condition = secret_statements[0]
        assert condition == "HasProviderApiKeySecret"
        assert as_list(statement["Action"]) == ["secretsmanager:GetSecretValue"]
        assert statement["Resource"] == {"Ref": "ProviderApiKeySecretArn"}


SECRET_WORDS = {"KEY", "APIKEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "PWD", "CREDENTIAL", "CREDENTIALS"}
SECRET_WORDS |= {"AUTH", "BEARER", "PRIVATE"}


def looks_secret(name: str) -> bool:
    """Whether an UPPER_SNAKE or CamelCase name has a secret-ish word (TOKENS, a count, is fine)."""
    words = re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", name)
    return any(word.upper() in SECRET_WORDS for word in words)


SECRET_VALUE = re.compile(
    r"^(sk-|sk_|pk_|ghp_|xox[abp]-|AKIA|ASIA|Bearer\s)|^[A-Za-z0-9+/_\-]{32,}={0,2}$", re.IGNORECASE
)


def test_secret_name_heuristic() -> None:
    assert looks_secret("PROVIDER_API_KEY")
    assert looks_secret("ProviderApiKey")
    assert looks_secret("OPENAI_TOKEN")
    assert not looks_secret("MAX_TOKENS_PER_REQUEST")
    assert not looks_secret("MaxTokensPerRequest")


def test_no_environment_variable_holds_a_secret(resources: dict[str, Any], template: dict[str, Any]) -> None:
    params = template["Parameters"]
    for name in functions(resources):
        variables = function_properties(template, name).get("Environment", {}).get("Variables", {})
        assert variables, name
        for var, value in variables.items():
            if var.endswith("_ARN"):
                # an ARN reference is fine: an ARN literal, or a parameter that holds an ARN
                if isinstance(value, str):
                    assert value == "" or value.startswith("arn:"), f"{name}: {var}"
                else:
                    assert set(value) == {"Ref"}, f"{name}: {var}"
                    if value["Ref"] in template["Resources"]:
                        continue  # a resource of this stack whose Ref is its ARN (the state machine)
                    assert value["Ref"].endswith("Arn"), f"{name}: {var}"
                    assert params[value["Ref"]].get("NoEcho") is not True, var
                    assert "arn:" in params[value["Ref"]].get("AllowedPattern", ""), var
                continue
            assert not looks_secret(var), f"{name}: {var} looks like a secret"
            if isinstance(value, str):
                assert not SECRET_VALUE.search(value), f"{name}: {var} has a secret-looking value"
            for ref in names_used(value):
                assert not looks_secret(ref), f"{name}: {var} <- {ref}"
                if ref in params:
                    assert params[ref].get("NoEcho") is not True, f"{name}: {var} <- NoEcho {ref}"


def test_environment_carries_the_settings(template: dict[str, Any]) -> None:
    variables = function_properties(template, "GenerateChunkFunction")["Environment"]["Variables"]
    expected = {
        "JOBS_BUCKET": {"Ref": "JobsBucket"},
        "PROVIDER_BASE_URL": {"Ref": "ProviderBaseUrl"},
        "DEFAULT_MODEL": {"Ref": "DefaultModel"},
        "MAX_TOKENS_PER_REQUEST": {"Ref": "MaxTokensPerRequest"},
        "CONTEXT_LENGTH": {"Ref": "ContextLength"},
        "PROVIDER_API_KEY_SECRET_ARN": {"Ref": "ProviderApiKeySecretArn"},
        "DEADLINE_MARGIN_SECONDS": {"Ref": "DeadlineMarginSeconds"},
        "PREFILL_STYLE": {"Ref": "PrefillStyle"},
        "LOG_LEVEL": {"Ref": "LogLevel"},
        "POWERTOOLS_LOG_LEVEL": {"Ref": "LogLevel"},
        "POWERTOOLS_SERVICE_NAME": "longform",
        "POWERTOOLS_METRICS_NAMESPACE": "Longform",
        "POWERTOOLS_LOGGER_LOG_EVENT": "false",
    }
    for var, value in expected.items():
        assert variables.get(var) == value, var


# ---- storage, logging, alarms --------------------------------------------------------------------


def test_bucket_is_encrypted_private_versioned_and_retained(resources: dict[str, Any]) -> None:
    bucket = resources["JobsBucket"]
    assert bucket["Type"] == "AWS::S3::Bucket"
    assert bucket["DeletionPolicy"] == "Retain"
    assert bucket["UpdateReplacePolicy"] == "Retain"
    props = bucket["Properties"]
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    algorithm = rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
    assert algorithm in ("AES256", "aws:kms")
    if algorithm == "aws:kms":
        assert rule["BucketKeyEnabled"] is True
    block = props["PublicAccessBlockConfiguration"]
    for setting in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
        assert block[setting] is True, setting
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    rules = props["LifecycleConfiguration"]["Rules"]
    assert any(r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays") == 7 for r in rules)
    assert any("AbortIncompleteMultipartUpload" in r for r in rules)


def test_bucket_policy_denies_plain_http(resources: dict[str, Any]) -> None:
    policies = [r for r in resources.values() if r["Type"] == "AWS::S3::BucketPolicy"]
    assert len(policies) == 1
    props = policies[0]["Properties"]
    assert props["Bucket"] == {"Ref": "JobsBucket"}
    tls_denies = [
        s
        for s in props["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny"
        and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") in ("false", False)
    ]
    assert len(tls_denies) == 1
    deny = tls_denies[0]
    assert deny["Principal"] in ("*", {"AWS": "*"})
    assert as_list(deny["Action"]) == ["s3:*"]
    targets = as_list(deny["Resource"])
    assert {"Fn::GetAtt": ["JobsBucket", "Arn"]} in targets
    assert {"Fn::Sub": "${JobsBucket.Arn}/*"} in targets


def test_state_machine_is_standard_traced_and_logs_no_execution_data(
    state_machine: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert state_machine["Type"] == "STANDARD"
    assert state_machine["Tracing"] == {"Enabled": True}
    logging = state_machine["Logging"]
    assert logging["IncludeExecutionData"] is False
    assert logging["Level"] in ("ERROR", "FATAL", "OFF")
    (destination,) = logging["Destinations"]
    group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    assert resources[group]["Type"] == "AWS::Logs::LogGroup"
    delivery = {
        a
        for s, _ in policy_statements(state_machine["Policies"])
        for a in as_list(s["Action"])
        if a.startswith("logs:")
    }
    assert {"logs:CreateLogDelivery", "logs:PutResourcePolicy", "logs:DescribeLogGroups"} <= delivery


def test_every_log_group_has_retention_and_every_function_its_own_group(
    resources: dict[str, Any], template: dict[str, Any]
) -> None:
    groups = {name for name, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup"}
    for name in groups:
        assert resources[name]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    wired = set()
    for name in functions(resources):
        group = function_properties(template, name)["LoggingConfig"]["LogGroup"]["Ref"]
        assert group in groups, name
        wired.add(group)
    assert len(wired) == len(functions(resources)), "functions share a log group"


def test_alarms_cover_failed_and_timed_out_executions_and_function_errors(resources: dict[str, Any]) -> None:
    alarms = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    watched = {
        (a["Namespace"], a["MetricName"], names_used(a["Dimensions"][0]["Value"]).pop()) for a in alarms
    }
    assert ("AWS/States", "ExecutionsFailed", "GenerationStateMachine") in watched
    assert ("AWS/States", "ExecutionsFailed", "BatchStateMachine") in watched
    assert ("AWS/States", "ExecutionsTimedOut", "GenerationStateMachine") in watched
    for name in functions(resources):
        assert ("AWS/Lambda", "Errors", name) in watched, name
    for alarm in alarms:
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        assert alarm["Statistic"] == "Sum"
        assert alarm["Period"] == 300
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"
    topic = resources["AlarmTopic"]["Properties"]
    assert "KmsMasterKeyId" in topic
    subscriptions = [r for r in resources.values() if r["Type"] == "AWS::SNS::Subscription"]
    assert all(s.get("Condition") == "HasAlarmEmail" for s in subscriptions)


def test_outputs(template: dict[str, Any]) -> None:
    assert set(template["Outputs"]) >= {
        "JobsBucketName",
        "GenerationStateMachineArn",
        "GenerateChunkFunctionName",
        "FinalizeFunctionName",
        "RuntimeLayerArn",
        "AlarmTopicArn",
    }


def test_every_parameter_and_condition_is_used(template: dict[str, Any]) -> None:
    used = names_used({k: v for k, v in template.items() if k not in ("Parameters", "Metadata")})
    unused_params = set(template["Parameters"]) - used
    assert unused_params == set(), f"parameters never used: {sorted(unused_params)}"
    unused_conditions = set(template.get("Conditions", {})) - used
    assert unused_conditions == set(), f"conditions never used: {sorted(unused_conditions)}"


def test_every_reference_resolves(template: dict[str, Any]) -> None:
    known = set(template["Parameters"]) | set(template["Resources"]) | set(template.get("Conditions", {}))
    # SAM's own references to what it generates: !Ref GenerationsApi.Stage
    known |= {f"{n}.Stage" for n, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Api"}
    unresolved = {n for n in names_used(template) if not n.startswith("AWS::")} - known
    assert unresolved == set()


# ---- the S3 drop folder and the completion event -------------------------------------------------


def test_drop_folder_trigger_is_restricted_to_objects_created_under_requests(
    resources: dict[str, Any], template: dict[str, Any]
) -> None:
    # the bucket sends its events to EventBridge: no bucket <-> function dependency
    assert resources["JobsBucket"]["Properties"]["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}
    }
    rules = {n: r["Properties"] for n, r in resources.items() if r["Type"] == "AWS::Events::Rule"}
    function_arn = {"Fn::GetAtt": ["DropFolderFunction", "Arn"]}
    triggers = {n: p for n, p in rules.items() if any(t["Arn"] == function_arn for t in p["Targets"])}
    assert list(triggers) == ["DropFolderRule"]
    rule = triggers["DropFolderRule"]
    assert rule.get("EventBusName", "default") == "default"
    assert rule["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [{"Ref": "JobsBucket"}]},
            "object": {"key": [{"prefix": "requests/"}]},
        },
    }
    (target,) = rule["Targets"]
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["DropFolderDeadLetterQueue", "Arn"]}
    permissions = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Permission"
        and names_used(r["Properties"]["FunctionName"]) == {"DropFolderFunction"}
    ]
    assert permissions == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": ["DropFolderFunction", "Arn"]},
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": ["DropFolderRule", "Arn"]},
        }
    ]
    # a failed submit is retried, then parked in the dead-letter queue, which is alarmed
    props = function_properties(template, "DropFolderFunction")
    invoke = props["EventInvokeConfig"]
    assert invoke["MaximumRetryAttempts"] == 2
    assert invoke["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["DropFolderDeadLetterQueue", "Arn"]},
    }
    queue_policy = resources["DropFolderDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]
    (grant,) = [s for s in queue_policy["Statement"] if s["Sid"] == "DropFolderRuleDeadLetters"]
    assert grant["Principal"] == {"Service": "events.amazonaws.com"}
    assert grant["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["DropFolderRule", "Arn"]}}}
    alarmed = {
        names_used(r["Properties"]["Dimensions"][0]["Value"]).pop()
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"]["Namespace"] == "AWS/SQS"
    }
    assert "DropFolderDeadLetterQueue" in alarmed


def test_drop_folder_starts_executions_of_the_state_machine_only(template: dict[str, Any]) -> None:
    props = function_properties(template, "DropFolderFunction")
    assert props["Environment"]["Variables"]["STATE_MACHINE_ARN"] == {"Ref": "GenerationStateMachine"}
    states = [
        s
        for s, _ in policy_statements(props["Policies"])
        if any(a.startswith("states:") for a in as_list(s["Action"]))
    ]
    assert states == [
        {
            "Sid": "StartJobs",
            "Effect": "Allow",
            "Action": "states:StartExecution",
            "Resource": {"Ref": "GenerationStateMachine"},
        }
    ]


def test_every_function_that_publishes_completion_events_may_put_them(
    resources: dict[str, Any], template: dict[str, Any]
) -> None:
    publishers = set()
    for name in functions(resources):
        props = function_properties(template, name)
        bus = props.get("Environment", {}).get("Variables", {}).get("EVENT_BUS_NAME")
        puts = [
            s
            for s, _ in policy_statements(props.get("Policies", []))
            if "events:PutEvents" in as_list(s["Action"])
        ]
        if bus is None:
            assert puts == [], f"{name} may put events but publishes none"
            continue
        publishers.add(name)
        assert bus == "default", name
        (statement,) = puts
        assert statement["Resource"] == {
            "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"
        }
        assert statement["Condition"]["StringEquals"]["events:source"] == "longform"
    assert "FinalizeFunction" in publishers


# ---- the sweeper ---------------------------------------------------------------------------------


def test_sweeper_gets_the_workflows_ended_executions_retried_then_parked(
    resources: dict[str, Any], template: dict[str, Any]
) -> None:
    from longform_core.sweep import DETAIL_TYPE, EVENT_SOURCE, SWEPT_STATUSES

    rules = {n: r["Properties"] for n, r in resources.items() if r["Type"] == "AWS::Events::Rule"}
    function_arn = {"Fn::GetAtt": ["SweeperFunction", "Arn"]}
    triggers = {n: p for n, p in rules.items() if any(t["Arn"] == function_arn for t in p["Targets"])}
    assert list(triggers) == ["SweeperRule"]
    rule = triggers["SweeperRule"]
    assert rule.get("EventBusName", "default") == "default"  # where Step Functions sends them
    pattern = rule["EventPattern"]
    assert pattern == {
        "source": [EVENT_SOURCE],
        "detail-type": [DETAIL_TYPE],
        "detail": {
            "status": ["FAILED", "TIMED_OUT", "ABORTED"],
            "stateMachineArn": [{"Ref": "GenerationStateMachine"}],
        },
    }
    assert set(pattern["detail"]["status"]) == SWEPT_STATUSES
    (target,) = rule["Targets"]
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["SweeperDeadLetterQueue", "Arn"]}
    permissions = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Permission"
        and names_used(r["Properties"]["FunctionName"]) == {"SweeperFunction"}
    ]
    assert permissions == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": function_arn,
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": ["SweeperRule", "Arn"]},
        }
    ]
    props = function_properties(template, "SweeperFunction")
    invoke = props["EventInvokeConfig"]
    assert invoke["MaximumRetryAttempts"] == 2
    assert invoke["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["SweeperDeadLetterQueue", "Arn"]},
    }
    queue_policy = resources["SweeperDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]
    (grant,) = queue_policy["Statement"]
    assert grant["Principal"] == {"Service": "events.amazonaws.com"}
    assert grant["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["SweeperRule", "Arn"]}}}
    alarmed = {
        names_used(r["Properties"]["Dimensions"][0]["Value"]).pop()
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"]["Namespace"] == "AWS/SQS"
    }
    assert "SweeperDeadLetterQueue" in alarmed


def test_sweeper_knows_the_state_machine_but_may_not_start_or_stop_it(template: dict[str, Any]) -> None:
    props = function_properties(template, "SweeperFunction")
    variables = props["Environment"]["Variables"]
    assert variables["STATE_MACHINE_ARN"] == {"Ref": "GenerationStateMachine"}
    assert variables["EVENT_BUS_NAME"] == "default"
    actions = {a for s, _ in policy_statements(props["Policies"]) for a in as_list(s["Action"])}
    assert not any(a.startswith(("states:", "secretsmanager:")) for a in actions), actions
