"""template.yaml for the HTTP API: least privilege for the API function, nothing open to the world,
IAM by default and API keys with a usage plan on request, access logs, alarms."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .test_template import as_list, function_properties, names_used, policy_statements

API_PATHS = [
    "/batches",
    "/batches/{batch_id}",
    "/generations",
    "/generations/{job_id}",
    "/generations/{job_id}/output",
    "/v1/{proxy+}",
]
INTEGRATION_URI = (
    "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
    "${ApiFunction.Arn}/invocations"
)


@pytest.fixture(scope="module")
def api(template: dict[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = template["Resources"]["GenerationsApi"]
    assert resource["Type"] == "AWS::Serverless::Api"
    return resource


def test_api_function_is_wired_to_the_state_machine(template: dict[str, Any]) -> None:
    props = function_properties(template, "ApiFunction")
    assert props["CodeUri"] == "functions/api/"
    assert props["Handler"] == "app.lambda_handler"
    assert props["Timeout"] < 29  # API Gateway's integration timeout
    variables = props["Environment"]["Variables"]
    assert variables["STATE_MACHINE_ARN"] == {"Ref": "GenerationStateMachine"}
    assert variables["EVENT_BUS_NAME"] == "default"
    assert variables["JOBS_BUCKET"] == {"Ref": "JobsBucket"}


def test_api_function_policies_are_least_privilege(template: dict[str, Any]) -> None:
    props = function_properties(template, "ApiFunction")
    statements = {s["Sid"]: s for s, _ in policy_statements(props["Policies"])}
    for policy in props["Policies"]:
        assert set(policy) == {"Statement"}, "no managed or SAM policy templates"
    actions = {a for s in statements.values() for a in as_list(s["Action"])}
    assert actions == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",  # only OpenAI's files (test_template.py)
        "s3:ListBucket",
        "states:StartExecution",
        "states:ListExecutions",
        "states:StopExecution",
        "events:PutEvents",
    }
    # the one Deny refuses listings outside jobs/ (test_template_security.py)
    assert all(s["Effect"] == "Allow" for sid, s in statements.items() if sid != "NoListingOutsideJobs")
    assert statements["NoListingOutsideJobs"]["Effect"] == "Deny"
    assert as_list(statements["NoListingOutsideJobs"]["Action"]) == ["s3:ListBucket"]
    assert all("*" not in a.split(":")[1] for a in actions)
    start = statements["StartAndListJobs"]
    assert set(as_list(start["Action"])) == {"states:StartExecution", "states:ListExecutions"}
    assert start["Resource"] == {"Ref": "GenerationStateMachine"}
    stop = statements["CancelJobs"]
    assert as_list(stop["Action"]) == ["states:StopExecution"]
    assert stop["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:"
        "${GenerationStateMachine.Name}:*"
    }
    events = statements["CompletionEvent"]
    assert events["Condition"]["StringEquals"] == {
        "events:source": "longform",
        "events:detail-type": ["Generation Finished", "Batch Finished"],
    }
    batches = statements["StartListAndCancelBatches"]
    assert set(as_list(batches["Action"])) == {"states:StartExecution", "states:ListExecutions"}
    assert batches["Resource"] == {"Ref": "BatchStateMachine"}
    assert statements["CancelBatches"]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:"
        "${BatchStateMachine.Name}:*"
    }


def test_every_method_of_the_api_needs_iam_or_an_api_key(api: dict[str, Any]) -> None:
    body = api["Properties"]["DefinitionBody"]
    assert sorted(body["paths"]) == API_PATHS
    for path, methods in body["paths"].items():
        assert list(methods) == ["x-amazon-apigateway-any-method"], path
        method = methods["x-amazon-apigateway-any-method"]
        # never without security: SigV4 by default, the API key when ApiAuth=API_KEY
        # (with API keys, the authorizer reads the key from x-api-key or Authorization: Bearer)
        assert method["security"] == {
            "Fn::If": ["UseApiKeys", [{"ApiKey": [], "ApiKeyOrBearer": []}], [{"SigV4": []}]]
        }, path
        integration = method["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy"
        assert integration["httpMethod"] == "POST"
        assert integration["uri"] == {"Fn::Sub": INTEGRATION_URI}
    schemes = body["components"]["securitySchemes"]
    assert schemes["SigV4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    assert schemes["ApiKey"] == {"type": "apiKey", "name": "x-api-key", "in": "header"}
    assert body["x-amazon-apigateway-api-key-source"] == {"Fn::If": ["UseApiKeys", "AUTHORIZER", "HEADER"]}
    authorizer = schemes["ApiKeyOrBearer"]["x-amazon-apigateway-authorizer"]
    assert schemes["ApiKeyOrBearer"]["x-amazon-apigateway-authtype"] == "custom"
    assert authorizer["type"] == "request" and authorizer["authorizerResultTtlInSeconds"] == 0
    assert "ApiKeyAuthorizerFunction.Arn" in authorizer["authorizerUri"]["Fn::Sub"]
    assert body["x-amazon-apigateway-binary-media-types"] == ["multipart/form-data"]
    assert "Auth" not in api["Properties"]


def test_api_auth_parameter_defaults_to_iam(template: dict[str, Any]) -> None:
    param = template["Parameters"]["ApiAuth"]
    assert param["Default"] == "IAM"
    assert param["AllowedValues"] == ["IAM", "API_KEY"]
    assert template["Conditions"]["UseApiKeys"] == {"Fn::Equals": [{"Ref": "ApiAuth"}, "API_KEY"]}


def test_api_keys_come_with_a_throttled_usage_plan(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    plan = resources["GenerationsApiUsagePlan"]
    key = resources["GenerationsApiKey"]
    link = resources["GenerationsApiUsagePlanKey"]
    for resource in (plan, key, link):
        assert resource["Condition"] == "UseApiKeys"
    assert plan["Properties"]["ApiStages"] == [
        {"ApiId": {"Ref": "GenerationsApi"}, "Stage": {"Ref": "GenerationsApi.Stage"}}
    ]
    assert plan["Properties"]["Throttle"]["RateLimit"] > 0
    assert plan["Properties"]["Quota"]["Limit"] > 0
    assert link["Properties"] == {
        "KeyId": {"Ref": "GenerationsApiKey"},
        "KeyType": "API_KEY",
        "UsagePlanId": {"Ref": "GenerationsApiUsagePlan"},
    }
    assert template["Outputs"]["GenerationsApiKeyId"]["Condition"] == "UseApiKeys"


def test_api_is_regional_traced_throttled_and_access_logged(
    template: dict[str, Any], api: dict[str, Any]
) -> None:
    props = api["Properties"]
    assert props["EndpointConfiguration"] == {"Type": "REGIONAL"}
    assert props["TracingEnabled"] is True
    (settings,) = props["MethodSettings"]
    assert settings["ThrottlingRateLimit"] > 0
    assert settings["ThrottlingBurstLimit"] > 0
    access = props["AccessLogSetting"]
    assert access["DestinationArn"] == {"Fn::GetAtt": ["GenerationsApiAccessLogGroup", "Arn"]}
    fields = json.loads(access["Format"])
    assert {"requestId", "status", "user", "apiKeyId", "path", "method"} <= set(fields)
    group = template["Resources"]["GenerationsApiAccessLogGroup"]["Properties"]
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert "KmsKeyId" in group
    # access logging needs the account's CloudWatch role first
    assert api["DependsOn"] == "ApiGatewayAccount"


def test_only_this_api_may_invoke_the_api_function(template: dict[str, Any]) -> None:
    permissions = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Permission"
        and names_used(r["Properties"]["FunctionName"]) == {"ApiFunction"}
    ]
    assert permissions == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": ["ApiFunction", "Arn"]},
            "Principal": "apigateway.amazonaws.com",
            "SourceArn": {
                "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
                f"${{GenerationsApi}}/*/*/{resource}*"
            },
        }
        for resource in ("generations", "batches", "v1")
    ]


def test_api_alarms_and_outputs(template: dict[str, Any]) -> None:
    alarms = {
        (r["Properties"]["Namespace"], r["Properties"]["MetricName"])
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert ("AWS/ApiGateway", "5XXError") in alarms
    five = template["Resources"]["GenerationsApi5xxAlarm"]["Properties"]
    # the API is named after the stack, which is how the alarm finds its metric
    assert template["Resources"]["GenerationsApi"]["Properties"]["Name"] == {"Ref": "AWS::StackName"}
    assert five["Dimensions"] == [
        {"Name": "ApiName", "Value": {"Ref": "AWS::StackName"}},
        {"Name": "Stage", "Value": template["Resources"]["GenerationsApi"]["Properties"]["StageName"]},
    ]
    url = template["Outputs"]["GenerationsApiUrl"]["Value"]["Fn::Sub"]
    assert url.startswith("https://${GenerationsApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/")
