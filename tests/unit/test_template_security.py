"""Isolation and limits in template.yaml: listing confined to prefixes, the monitoring key's
conditions, data expiry, the cap on concurrent chunks, and the deployment-wide limits reaching the
functions (also through the local cloud's environment, derived from the template)."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import pytest
from longform_core.config import Settings
from longform_core.job_store import REQUESTS_PREFIX
from longform_core.request import GenerationRequest
from longform_core.results import RESULTS_PREFIX

from longform.local.template import function_environment

from .test_template import as_list, function_properties, functions, policy_statements

BUCKET_ARN = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${JobsBucket}"}
# the prefixes each function may list (none lists: ListBucket only makes a missing key a 404)
LISTABLE: dict[str, tuple[str, ...]] = {
    "GenerateChunkFunction": ("jobs/",),
    "FinalizeFunction": ("jobs/",),
    "ApiFunction": ("jobs/", "batch-runs/", "batch-inputs/"),
    "DropFolderFunction": ("jobs/", REQUESTS_PREFIX),
    "BatchSplitFunction": ("jobs/", "batch-runs/"),
    "BatchOutputFunction": ("jobs/", "batch-runs/"),
    "BatchDropFolderFunction": ("batches/", "batch-runs/"),
}
ABSENT = object()  # a request without the s3:prefix key


# ---- a small IAM evaluator: what the functions' own policies allow ---------------------------------


def _condition_holds(operator: str, key: str, wanted: Any, context: dict[str, str]) -> bool:
    values = [str(v) for v in as_list(wanted)]
    present = key in context
    if operator == "Null":
        return (not present) == (str(wanted).lower() == "true")
    base, if_exists = operator.removesuffix("IfExists"), operator.endswith("IfExists")
    if not present:
        # IfExists: an absent key passes; a negated operator matches an absent key; others do not
        return if_exists or base.startswith(("StringNot", "ArnNot"))
    value = context[key]
    if base in ("StringLike", "ArnLike"):
        return any(fnmatch.fnmatchcase(value, v) for v in values)
    if base in ("StringNotLike", "ArnNotLike"):
        return not any(fnmatch.fnmatchcase(value, v) for v in values)
    if base == "StringEquals":
        return value in values
    if base == "StringNotEquals":
        return value not in values
    raise AssertionError(f"the evaluator does not know {operator}")


def _applies(statement: dict[str, Any], action: str, resource: Any, context: dict[str, str]) -> bool:
    if action not in as_list(statement["Action"]) or statement["Resource"] != resource:
        return False
    return all(
        _condition_holds(operator, key, wanted, context)
        for operator, keys in statement.get("Condition", {}).items()
        for key, wanted in keys.items()
    )


def may_list(template: dict[str, Any], function: str, prefix: Any) -> bool:
    """Whether the function's own policies let it ListBucket the jobs bucket with this prefix."""
    statements = [s for s, _ in policy_statements(function_properties(template, function)["Policies"])]
    context = {} if prefix is ABSENT else {"s3:prefix": prefix}
    matching = [s for s in statements if _applies(s, "s3:ListBucket", BUCKET_ARN, context)]
    if any(s["Effect"] == "Deny" for s in matching):
        return False
    return any(s["Effect"] == "Allow" for s in matching)


def test_the_evaluator() -> None:
    assert _condition_holds("StringLikeIfExists", "k", ["a/*"], {})
    assert not _condition_holds("StringLike", "k", ["a/*"], {})
    assert _condition_holds("StringLike", "k", ["a/*"], {"k": "a/"})
    assert not _condition_holds("StringLike", "k", ["a/*"], {"k": ""})
    assert _condition_holds("StringNotLike", "k", ["a/*"], {"k": ""})
    assert _condition_holds("StringNotLike", "k", ["a/*"], {})
    assert _condition_holds("Null", "k", "false", {"k": ""})
    assert not _condition_holds("Null", "k", "false", {})


def test_every_function_that_may_list_is_listed_here(
    resources: dict[str, Any], template: dict[str, Any]
) -> None:
    listing = {
        name
        for name in functions(resources)
        for s, _ in policy_statements(function_properties(template, name)["Policies"])
        if "s3:ListBucket" in as_list(s["Action"])
    }
    assert set(LISTABLE) <= listing


@pytest.mark.parametrize("function", sorted(LISTABLE))
def test_listing_stays_confined_to_the_functions_prefixes(template: dict[str, Any], function: str) -> None:
    allowed = LISTABLE[function]
    # S3's implicit check that answers a missing key 404 (NoSuchKey) carries no prefix: allowed
    assert may_list(template, function, ABSENT)
    for prefix in allowed:
        assert may_list(template, function, prefix), prefix
        assert may_list(template, function, f"{prefix}k-0123/chunks/"), prefix
    # the empty prefix lists the whole bucket: refused, like every prefix outside
    for prefix in ("", "/", "j", "jobs", "results/", "results/essay", "request", "other/jobs/", "*"):
        if any(prefix.startswith(p) for p in allowed):
            continue
        assert not may_list(template, function, prefix), (function, prefix)
    if REQUESTS_PREFIX not in allowed:
        assert not may_list(template, function, REQUESTS_PREFIX)


@pytest.mark.parametrize("function", sorted(LISTABLE))
def test_an_explicit_deny_refuses_other_listings_whatever_else_grants_them(
    template: dict[str, Any], function: str
) -> None:
    statements = [s for s, _ in policy_statements(function_properties(template, function)["Policies"])]
    (deny,) = [s for s in statements if s["Effect"] == "Deny"]
    assert as_list(deny["Action"]) == ["s3:ListBucket"]
    assert deny["Resource"] == BUCKET_ARN
    # a grant of every listing (say, a managed read-only policy attached to the role later)
    broad = {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": BUCKET_ARN}
    for prefix in ("", "results/", "other/"):
        context = {"s3:prefix": prefix}
        assert _applies(broad, "s3:ListBucket", BUCKET_ARN, context)
        assert _applies(deny, "s3:ListBucket", BUCKET_ARN, context), prefix
    for prefix in LISTABLE[function]:
        assert not _applies(deny, "s3:ListBucket", BUCKET_ARN, {"s3:prefix": prefix + "x"})
    assert not _applies(deny, "s3:ListBucket", BUCKET_ARN, {})  # the 404 check is left alone


# ---- the monitoring key ------------------------------------------------------------------------------


def key_statements(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    policy = resources["MonitoringKey"]["Properties"]["KeyPolicy"]
    return {s["Sid"]: s for s in policy["Statement"]}


def test_cloudwatch_logs_may_use_the_key_only_for_this_stacks_log_groups(resources: dict[str, Any]) -> None:
    statement = key_statements(resources)["CloudWatchLogsOfThisAccount"]
    assert statement["Principal"] == {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}}
    (operator,) = statement["Condition"]
    assert operator == "ArnLike"
    arns = statement["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    patterns = [p["Fn::Sub"] for p in as_list(arns)]
    prefix = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
    for pattern in patterns:
        assert pattern.startswith(prefix), pattern
        assert "${AWS::StackName}-" in pattern, f"{pattern}: any log group of the account"
    # every log group the key encrypts is one of them
    groups = [r for r in resources.values() if r["Type"] == "AWS::Logs::LogGroup"]
    assert groups
    for group in groups:
        props = group["Properties"]
        assert props["KmsKeyId"] == {"Fn::GetAtt": ["MonitoringKey", "Arn"]}
        arn = prefix + props["LogGroupName"]["Fn::Sub"]
        assert any(fnmatch.fnmatchcase(arn, p) for p in patterns), arn
    # another stack's or the account's other log groups are not
    for other in ("/aws/lambda/other-stack", "/aws/lambda/x${AWS::StackName}-api", "/secret/group"):
        assert not any(fnmatch.fnmatchcase(prefix + other, p) for p in patterns), other


def test_cloudwatch_alarms_may_use_the_key_only_for_this_accounts_alarms(resources: dict[str, Any]) -> None:
    statement = key_statements(resources)["CloudWatchAlarmsPublish"]
    assert statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert set(as_list(statement["Action"])) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    condition = statement["Condition"]
    assert condition["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    alarms = "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*"
    assert condition["ArnLike"] == {"aws:SourceArn": {"Fn::Sub": alarms}}


def test_every_service_principal_of_the_key_is_conditioned(resources: dict[str, Any]) -> None:
    for sid, statement in key_statements(resources).items():
        if "Service" in statement["Principal"]:
            assert statement.get("Condition"), f"{sid}: a service may use the key for anyone"


# ---- data expiry -------------------------------------------------------------------------------------


def holds(condition: Any, template: dict[str, Any], parameters: dict[str, Any]) -> bool:
    """Evaluate a template condition (Fn::Not / Fn::Equals / Fn::And / Fn::Or / Condition / Ref)."""
    if isinstance(condition, str):
        return holds(template["Conditions"][condition], template, parameters)

    def value(node: Any) -> Any:
        if isinstance(node, dict) and "Ref" in node:
            name = node["Ref"]
            return parameters.get(name, template["Parameters"][name].get("Default"))
        return node

    (function, args), *_ = condition.items()
    if function == "Fn::Not":
        return not holds(args[0], template, parameters)
    if function == "Fn::Equals":
        return str(value(args[0])) == str(value(args[1]))
    if function == "Fn::And":
        return all(holds(a, template, parameters) for a in args)
    if function == "Fn::Or":
        return any(holds(a, template, parameters) for a in args)
    if function == "Condition":
        return holds(args, template, parameters)
    raise AssertionError(f"unknown condition function {function}")


def resolve_ifs(node: Any, template: dict[str, Any], parameters: dict[str, Any]) -> Any:
    """``node`` with its Fn::If resolved for these parameters (AWS::NoValue list items dropped)."""
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            name, then, otherwise = node["Fn::If"]
            return resolve_ifs(then if holds(name, template, parameters) else otherwise, template, parameters)
        return {k: resolve_ifs(v, template, parameters) for k, v in node.items()}
    if isinstance(node, list):
        items = [resolve_ifs(v, template, parameters) for v in node]
        return [v for v in items if v != {"Ref": "AWS::NoValue"}]
    return node


def expiry_rules(template: dict[str, Any], parameters: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rules = template["Resources"]["JobsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    resolved = resolve_ifs(rules, template, parameters)
    return {r["Prefix"]: r for r in resolved if "ExpirationInDays" in r}


def test_retention_days_expires_jobs_requests_and_results(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["RetentionDays"]
    assert parameter["Type"] == "Number"
    assert parameter["Default"] == 30
    assert parameter["MinValue"] == 0
    for parameters in ({}, {"RetentionDays": 7}):
        rules = expiry_rules(template, parameters)
        batches = ["batches/", "batch-inputs/", "batch-runs/"]  # uploads, inputs, a batch's own files
        assert sorted(rules) == sorted(["jobs/", REQUESTS_PREFIX, RESULTS_PREFIX, *batches])
        for rule in rules.values():
            assert rule["Status"] == "Enabled"
            assert rule["ExpirationInDays"] == {"Ref": "RetentionDays"}
    # the old versions a versioned bucket keeps still go (7 days after they stop being current)
    rules = template["Resources"]["JobsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert any(r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays") == 7 for r in rules)


def test_retention_days_zero_keeps_everything(template: dict[str, Any]) -> None:
    assert expiry_rules(template, {"RetentionDays": 0}) == {}
    rules = resolve_ifs(
        template["Resources"]["JobsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"],
        template,
        {"RetentionDays": 0},
    )
    assert [r["Id"] for r in rules] == ["ExpireOldVersionsAndAbortUploads"]


# ---- the cap on concurrent provider requests ---------------------------------------------------------


def test_max_concurrent_chunks_reserves_the_chunk_functions_concurrency(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["MaxConcurrentChunks"]
    assert (parameter["Type"], parameter["Default"], parameter["MinValue"]) == ("Number", 0, 0)
    props = template["Resources"]["GenerateChunkFunction"]["Properties"]
    reserved = props["ReservedConcurrentExecutions"]
    assert resolve_ifs(reserved, template, {"MaxConcurrentChunks": 10}) == {"Ref": "MaxConcurrentChunks"}
    assert resolve_ifs({"x": [reserved]}, template, {"MaxConcurrentChunks": 0}) == {"x": []}  # NoValue
    assert resolve_ifs({"x": [reserved]}, template, {}) == {"x": []}  # unreserved by default
    # only the chunk function talks to the provider: nothing else is capped
    for name, resource in template["Resources"].items():
        if name != "GenerateChunkFunction" and resource["Type"] == "AWS::Serverless::Function":
            assert "ReservedConcurrentExecutions" not in resource.get("Properties", {}), name


# ---- the deployment-wide limits ----------------------------------------------------------------------


PROVIDER_URLS_PASSING_THE_PATTERN = [
    "https://api.deepinfra.com/v1/openai",
    "https://gateway.example.com:8443/v1",
    "http://127.0.0.1:8080/v1",
    "http://localhost:11434/v1",
    "http://10.0.0.5:8000/v1",  # passes the pattern; the functions refuse it unless allowed
]
PROVIDER_URLS_FAILING_THE_PATTERN = ["ftp://example.com/v1", "https://", "http:///v1", "api.example.com", ""]


def test_provider_base_url_pattern(template: dict[str, Any]) -> None:
    pattern = re.compile(template["Parameters"]["ProviderBaseUrl"]["AllowedPattern"])
    for url in PROVIDER_URLS_PASSING_THE_PATTERN:
        assert pattern.fullmatch(url), url
    for url in PROVIDER_URLS_FAILING_THE_PATTERN:
        assert not pattern.fullmatch(url), url
    insecure = template["Parameters"]["AllowInsecureProviderUrl"]
    assert insecure["Default"] == "false"
    assert sorted(insecure["AllowedValues"]) == ["false", "true"]
    assert "https://" in template["Parameters"]["ProviderBaseUrl"]["Default"]


def test_allowed_models_pattern(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["AllowedModels"]
    assert parameter["Default"] == ""
    pattern = re.compile(parameter["AllowedPattern"])
    for value in ("", "a/b", "deepseek-ai/DeepSeek-V3.2,meta-llama/Llama-3.3-70B", "a, b"):
        assert pattern.fullmatch(value), value
    for value in (",", "a,", ",a", "a,,b", " a"):
        assert not pattern.fullmatch(value), value


def test_the_limits_reach_every_function(template: dict[str, Any], resources: dict[str, Any]) -> None:
    expected = {
        "ALLOW_INSECURE_PROVIDER_URL": {"Ref": "AllowInsecureProviderUrl"},
        "DEFAULT_MAX_COST_USD": {"Ref": "DefaultMaxCostUsd"},
        "ALLOWED_MODELS": {"Ref": "AllowedModels"},
        "PROVIDER_BASE_URL": {"Ref": "ProviderBaseUrl"},
    }
    for name in functions(resources):
        variables = function_properties(template, name)["Environment"]["Variables"]
        for var, value in expected.items():
            assert variables.get(var) == value, (name, var)
    api = function_properties(template, "ApiFunction")["Environment"]["Variables"]
    assert api["OWNER_IDENTITY"] == {"Fn::If": ["UseApiKeys", "API_KEY", "IAM"]}
    default = template["Parameters"]["DefaultMaxCostUsd"]
    assert (default["Type"], default["Default"], default["MinValue"]) == ("Number", 0, 0)
    # a default the request format itself would refuse could not be read back from request.json
    max_cost = GenerationRequest.model_fields["max_cost_usd"]
    assert any(getattr(m, "le", None) == default["MaxValue"] for m in max_cost.metadata)


REFS = {"JobsBucket": "jobs-bucket", "GenerationStateMachine": "arn:aws:states:us-east-1:1:stateMachine:m"}


def test_the_local_cloud_derives_the_limits_from_the_template(template: dict[str, Any]) -> None:
    """The local cloud's environment comes from template.yaml: the defaults mean no limits."""
    settings = Settings.from_env(function_environment(template, refs=REFS))
    assert settings.allow_insecure_provider_url is False
    assert settings.default_max_cost_usd is None
    assert settings.allowed_models == ()
    assert settings.owner_identity == "IAM"
    limited = Settings.from_env(
        function_environment(
            template,
            refs=REFS,
            parameters={
                "AllowedModels": "a/one, b/two",
                "DefaultMaxCostUsd": "2.5",
                "ProviderBaseUrl": "http://10.0.0.5:8000/v1",
                "AllowInsecureProviderUrl": "true",
            },
        )
    )
    assert limited.allowed_models == ("a/one", "b/two")
    assert limited.default_max_cost_usd == 2.5
    assert limited.provider_base_url == "http://10.0.0.5:8000/v1"
    with pytest.raises(ValueError, match=r"^ProviderBaseUrl .*AllowInsecureProviderUrl=true"):
        Settings.from_env(
            function_environment(template, refs=REFS, parameters={"ProviderBaseUrl": "http://10.0.0.5/v1"})
        )


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    res: dict[str, Any] = template["Resources"]
    return res
