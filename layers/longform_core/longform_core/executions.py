"""The Step Functions adapter: start and stop the generation workflow's executions by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from .errors import PageTokenInvalid

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient
else:
    SFNClient = Any


def execution_arn_for(state_machine_arn: str, name: str) -> str:
    return state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"


class StepFunctionsExecutions:
    """Executions of one state machine (implements ``services.Executions``)."""

    def __init__(self, sfn: SFNClient, state_machine_arn: str):
        self.sfn = sfn
        self.state_machine_arn = state_machine_arn

    def arn_for(self, name: str) -> str:
        return execution_arn_for(self.state_machine_arn, name)

    def start(self, name: str, input_json: str) -> tuple[str, bool]:
        try:
            resp = self.sfn.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=input_json
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise
            return self.arn_for(name), False
        # on AWS a duplicate StartExecution (same name and input) of a running execution succeeds
        # and returns the original: "started" then only means "no error"
        return resp["executionArn"], True

    def stop(self, execution_arn: str, *, error: str, cause: str) -> None:
        try:
            self.sfn.stop_execution(executionArn=execution_arn, error=error, cause=cause)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ExecutionDoesNotExist":
                raise

    def recent(self, limit: int, next_token: str | None = None) -> tuple[list[str], str | None]:
        """Names of the most recent executions, newest first, and the token of the next page."""
        kwargs: dict[str, Any] = {"stateMachineArn": self.state_machine_arn, "maxResults": limit}
        if next_token:
            kwargs["nextToken"] = next_token
        try:
            page = self.sfn.list_executions(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("InvalidToken", "ValidationException"):
                raise PageTokenInvalid("not a valid or current page token") from exc
            raise
        return [e["name"] for e in page["executions"]], page.get("nextToken")
