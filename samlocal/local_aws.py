"""The AWS that `sam local` containers talk to: moto's server mode on 127.0.0.1, with Step Functions
executing and every Lambda task of its interpreter invoked through `sam local start-lambda`.

moto's server mode stores S3 objects and state machines but, left alone, runs no execution and has
no Lambda code to run. In this process it runs them: ``execute_state_machine`` is on, and the
interpreter's Lambda client (``boto_client_for`` in moto's ``lambda_eval_utils``, the one place
its ``Task`` states invoke a function) is pointed at start-lambda's endpoint, the function named by
its logical id (SAM's local Lambda service knows functions by logical id, the ASL names them by ARN).
So a job submitted through `sam local start-api` runs the repository's ``generation.asl.json``
(every ``${...}`` wired as ``template.yaml`` wires it), each chunk and Finalize in a Lambda container
of SAM CLI. The two repairs the in-process local cloud applies to moto's interpreter
(``longform.local.aws``: the ``states:startExecution`` casing, a stop right after a start) apply here.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
from botocore.config import Config

from longform.local.aws import (
    ACCOUNT_ID,
    FAKE_CREDENTIALS,
    REGION,
    StartedOnEnter,
    restore_sfn_integration_casing,
    stop_after_the_worker_starts,
)
from longform.local.provision import BUCKET, Stack, create_role, create_state_machines

CHUNK_READ_TIMEOUT = 960  # a chunk may stream up to the chunk function's 900 s timeout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, *, what: str, alive: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"{what} exited before listening on 127.0.0.1:{port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"{what} is not listening on 127.0.0.1:{port} after {timeout:.0f}s")


class _StartLambdaClient:
    """What moto's interpreter calls ``invoke`` on: start-lambda, the function by its logical id."""

    def __init__(self, endpoint: str):
        self._endpoint = endpoint
        self._client: Any = None
        self.invocations: list[str] = []

    def invoke(self, **params: Any) -> Any:
        name = str(params["FunctionName"]).split(":function:")[-1].split(":")[0]
        self.invocations.append(name)
        if self._client is None:  # created lazily: inside the run's fake credentials
            self._client = boto3.client(
                "lambda",
                endpoint_url=self._endpoint,
                region_name=REGION,
                aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                config=Config(
                    read_timeout=CHUNK_READ_TIMEOUT, connect_timeout=10, retries={"total_max_attempts": 1}
                ),
            )
        return self._client.invoke(**{**params, "FunctionName": name})


class LocalAws(StartedOnEnter):
    """Context manager: moto's server on 127.0.0.1:``port``, the bucket and both state machines."""

    def __init__(self, root: Path, template: dict[str, Any], start_lambda_endpoint: str):
        super().__init__()
        self.root = root
        self.template = template
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.lambda_client = _StartLambdaClient(start_lambda_endpoint)
        self.state_machine_arn = ""
        self.batch_state_machine_arn = ""
        self._created = Stack("", {})

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION)

    def _start(self) -> None:
        from moto.core.models import default_user_config
        from moto.server import ThreadedMotoServer
        from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

        stack = self._stack
        stack.enter_context(mock.patch.dict(os.environ, {**FAKE_CREDENTIALS, "MOTO_PORT": str(self.port)}))
        stack.enter_context(
            mock.patch.dict(
                default_user_config,
                {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}},
            )
        )
        real_client_for = lambda_eval_utils.boto_client_for

        def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
            if service == "lambda":
                return self.lambda_client
            return real_client_for(region=region, service=service, state_credentials=state_credentials)

        stack.enter_context(mock.patch.object(lambda_eval_utils, "boto_client_for", client_for))
        restore_sfn_integration_casing(stack)
        stop_after_the_worker_starts(stack)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request on stderr
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        server.start()
        stack.callback(server.stop)
        wait_for_port(self.port, 30, what="moto_server")
        self._create_resources()

    def _create_resources(self) -> None:
        """The bucket and both state machines, wired by the one owner of the wiring
        (``longform.local.provision``); the functions are SAM CLI's, named by their ARNs."""
        self.client("s3").create_bucket(Bucket=BUCKET)
        role = create_role(self.client("iam"), name="longform-samlocal", services=("states.amazonaws.com",))
        functions = {
            logical_id: f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{logical_id}"
            for logical_id, res in (self.template.get("Resources") or {}).items()
            if res.get("Type") == "AWS::Serverless::Function"
        }
        self._created = Stack(role, functions)
        create_state_machines(self.client("stepfunctions"), self.root, self.template, self._created)
        self.state_machine_arn = self._created.state_machine_arn
        self.batch_state_machine_arn = self._created.batch_state_machine_arn

    def refs(self) -> dict[str, str]:
        """What ``!Ref`` of the template's resources resolves to here."""
        return self._created.refs()

    def wait_execution(self, arn: str, timeout: float) -> dict[str, Any]:
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while True:
            desc = sfn.describe_execution(executionArn=arn)
            if desc["status"] != "RUNNING":
                return dict(desc)
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {arn} still RUNNING after {timeout:.0f}s")
            time.sleep(1)
