"""What `make sam-local` asserts: every function's real answer to its sample event (``events/``), the
API through `sam local start-api`, and a multi-chunk job that completes through Step Functions and
`sam local start-lambda` with the uncapped answer. Each check raises ``CheckFailed`` naming what
differed; each returns a one-line account of what it saw."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from longform.emulator.model import canonical_output
from longform.emulator.server import EmulatorServer
from longform.local.cloud import BUCKET

from .local_aws import LocalAws
from .sam import Sam

EVENTS = Path(__file__).resolve().parents[1] / "events"
JOB = "example-job-0001"
MODEL = "longform/emulated-writer"
EXECUTION_TIMEOUT = 900


class CheckFailed(AssertionError):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / name).read_text(encoding="utf-8")))


def expected_answer(request: dict[str, Any], emulator: EmulatorServer) -> str:
    messages = request.get("messages") or [{"role": "user", "content": request["prompt"]}]
    out = canonical_output(
        messages, model=request.get("model", MODEL), seed=request.get("seed"), settings=emulator.settings
    )
    return str(out.answer)


class Checks:
    def __init__(self, aws: LocalAws, sam: Sam, emulator: EmulatorServer, start_lambda: str):
        self.aws, self.sam, self.emulator = aws, sam, emulator
        self.s3 = aws.client("s3")
        self.lam = aws.lambda_client  # start-lambda (its invocations are counted there too)
        self.start_lambda = start_lambda

    # ---- helpers ------------------------------------------------------------------------------

    def text(self, key: str) -> str | None:
        try:
            return str(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode())
        except self.s3.exceptions.NoSuchKey:
            return None

    def seed(self, owner: str) -> None:
        """The job the sample events name: its request and a queued manifest (as the tests seed it)."""
        from longform_core.job_store import JobStore
        from longform_core.models import Manifest
        from longform_core.request import parse_request

        listing = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"jobs/{JOB}/").get("Contents", [])
        for obj in listing:
            self.s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
        store = JobStore(self.s3, BUCKET)
        request = parse_request(load("request.json"))
        store.put_request(JOB, request)
        store.put_manifest(Manifest(job_id=JOB, model=request.model or MODEL, owner=owner))

    def via_start_lambda(self, function: str, event: dict[str, Any]) -> Any:
        response = self.lam.invoke(FunctionName=function, Payload=json.dumps(event).encode())
        payload = json.loads(response["Payload"].read() or b"null")
        check("FunctionError" not in response, f"{function} via start-lambda: {payload}")
        return payload

    def wait_job(self, arn: str) -> dict[str, Any]:
        desc = self.aws.wait_execution(arn, EXECUTION_TIMEOUT)
        check(desc["status"] == "SUCCEEDED", f"execution {arn} ended {desc['status']}: {desc.get('cause')}")
        return desc

    def job_arn(self, job_id: str) -> str:
        from longform_core.executions import execution_arn_for

        return str(execution_arn_for(self.aws.state_machine_arn, job_id))

    # ---- every function, `sam local invoke` with its sample event --------------------------------

    def chunk_then_sweeper(self) -> str:
        from longform_core.api.route_helpers import caller_owner

        owner = caller_owner(load("api_get_generation.json")["requestContext"]["identity"], "IAM")
        self.seed(owner)
        out = self.sam.invoke("GenerateChunkFunction", EVENTS / "generate_chunk.json", name="generate_chunk")
        check(
            out.get("job_id") == JOB and out.get("chunk_index") == 0, f"GenerateChunkFunction answered {out}"
        )
        check(out.get("finish_reason") == "stop", f"GenerateChunkFunction: finish {out.get('finish_reason')}")
        swept = self.sam.invoke("SweeperFunction", EVENTS / "sweeper_execution_failed.json", name="sweeper")
        check(
            (swept.get("action"), swept.get("status")) == ("finalized", "failed"),
            f"SweeperFunction answered {swept}",
        )
        want = expected_answer(load("request.json"), self.emulator)
        check(
            self.text(f"jobs/{JOB}/output.md") == want, "the swept job's output.md is not the uncapped answer"
        )
        return f"GenerateChunk finish stop; Sweeper finalized the job failed, {len(want)} chars kept"

    def chunk_then_finalize(self) -> str:
        from longform_core.api.route_helpers import caller_owner

        owner = caller_owner(load("api_get_generation.json")["requestContext"]["identity"], "IAM")
        self.seed(owner)
        self.via_start_lambda("GenerateChunkFunction", load("generate_chunk.json"))
        out = self.sam.invoke("FinalizeFunction", EVENTS / "finalize.json", name="finalize")
        check(out.get("status") == "succeeded", f"FinalizeFunction answered {out}")
        want = expected_answer(load("request.json"), self.emulator)
        check(self.text(out["output_key"]) == want, "FinalizeFunction: output.md is not the uncapped answer")
        result = json.loads(self.text(f"jobs/{JOB}/result.json") or "{}")
        cost = result.get("infrastructure_cost") or {}
        check(cost.get("lambda_invocations", 0) >= 2, f"result.json has no infrastructure cost: {cost}")
        return f"Finalize succeeded, output == uncapped ({len(want)} chars), AWS cost ${cost['total_usd']}"

    def drop_folder(self) -> str:
        event = load("s3_object_created.json")
        key = event["detail"]["object"]["key"]
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=(EVENTS / "request.json").read_bytes())
        (outcome,) = self.sam.invoke(
            "DropFolderFunction", EVENTS / "s3_object_created.json", name="drop_folder"
        )["outcomes"]
        check(outcome.get("action") == "started", f"DropFolderFunction answered {outcome}")
        self.wait_job(self.job_arn(outcome["job_id"]))
        stem = key.removeprefix("requests/").rsplit(".", 1)[0]
        want = expected_answer(load("request.json"), self.emulator)
        check(self.text(f"results/{stem}.md") == want, f"results/{stem}.md is not the uncapped answer")
        return f"DropFolder started {outcome['job_id']}: SUCCEEDED, results/{stem}.md == uncapped"

    def api_post(self) -> str:
        response = self.sam.invoke("ApiFunction", EVENTS / "api_post_generations.json", name="api_post")
        check(response.get("statusCode") == 202, f"ApiFunction POST answered {response}")
        job_id = json.loads(response["body"])["job_id"]
        self.wait_job(self.job_arn(job_id))
        want = expected_answer(load("request.json"), self.emulator)
        check(
            self.text(f"jobs/{job_id}/output.md") == want,
            "the POSTed job's output is not the uncapped answer",
        )
        listing = self.via_start_lambda("ApiFunction", load("api_list_generations.json"))
        items = json.loads(listing["body"])["items"]
        check(job_id in [i["job_id"] for i in items], f"GET /generations does not list {job_id}: {items}")
        return f"ApiFunction POST 202 {job_id}; SUCCEEDED, output == uncapped; GET /generations lists it"

    def batch(self) -> str:
        event = load("s3_batch_object_created.json")
        data = (EVENTS / "batch.jsonl").read_bytes()
        self.s3.put_object(Bucket=BUCKET, Key=event["detail"]["object"]["key"], Body=data)
        (outcome,) = self.sam.invoke(
            "BatchDropFolderFunction", EVENTS / "s3_batch_object_created.json", name="batch_drop"
        )["outcomes"]
        batch_id = load("batch_split.json")["batch_id"]
        check((outcome.get("action"), outcome.get("batch_id")) == ("started", batch_id), f"batch: {outcome}")
        from longform_core.executions import execution_arn_for

        desc = self.aws.wait_execution(
            execution_arn_for(self.aws.batch_state_machine_arn, batch_id), EXECUTION_TIMEOUT
        )
        check(
            desc["status"] == "SUCCEEDED", f"the batch execution ended {desc['status']}: {desc.get('cause')}"
        )
        split = self.sam.invoke("BatchSplitFunction", EVENTS / "batch_split.json", name="batch_split")
        check(split.get("lines") == 2, f"BatchSplitFunction answered {split}")
        output = self.sam.invoke("BatchOutputFunction", EVENTS / "batch_output.json", name="batch_output")
        check(
            output.get("status") == "completed" and output["counts"].get("succeeded") == 2,
            f"BatchOutput: {output}",
        )
        lines = [json.loads(line) for line in data.decode().splitlines()]
        got = [
            json.loads(line) for line in (self.text("results/examples/companies.jsonl") or "").splitlines()
        ]
        answers = [g["response"]["body"]["choices"][0]["message"]["content"] for g in got]
        want = [expected_answer(r, self.emulator) for r in (lines[0]["body"], lines[1])]
        check(answers == want, "the batch's output lines are not the uncapped answers")
        return f"BatchDropFolder started {batch_id}: SUCCEEDED; Split 2 lines; Output completed 2/2"

    # ---- the API through `sam local start-api`, and a job that really completes -------------------

    def api(self, base: str, *, answer_tokens: int, cap: int) -> list[str]:
        """Submit (a job of several chunks), status until it ends, list, output, a bad request, an
        unknown id, cancel; the job's output must equal the uncapped answer."""
        seen: list[str] = []
        request = {
            "model": MODEL,
            "prompt": f"Write a history of the Fresnel lens. [emulator answer_tokens={answer_tokens}]",
            "max_tokens_per_request": cap,
        }
        with httpx.Client(base_url=base, timeout=300) as http:
            posted = http.post("/generations", json=request, headers={"Idempotency-Key": "samlocal-0001"})
            check(posted.status_code == 202, f"POST /generations: {posted.status_code} {posted.text[:300]}")
            job_id = posted.json()["job_id"]
            seen.append(f"POST /generations -> 202 {job_id}")
            view = self._until_ended(http, job_id)
            progress = view["progress"]
            check(view["status"] == "succeeded", f"the job ended {view['status']}: {view.get('error')}")
            check(
                progress["chunks"] >= 2,
                f"the job took {progress['chunks']} chunk(s); a cap of {cap} means more",
            )
            cost = view.get("infrastructure_cost") or {}
            seen.append(
                f"GET /generations/{{id}} -> 200 succeeded, {progress['chunks']} chunks, "
                f"{progress['output_tokens']} tokens, AWS cost ${cost.get('total_usd')}"
            )
            listing = http.get("/generations", params={"limit": 10})
            check(
                listing.status_code == 200 and job_id in listing.text,
                f"GET /generations: {listing.status_code}",
            )
            seen.append(f"GET /generations -> 200, lists {job_id}")
            page = http.get(f"/generations/{job_id}/output", params={"offset": 0})
            check(page.status_code == 200, f"GET output: {page.status_code} {page.text[:200]}")
            body = page.json()
            want = expected_answer(request, self.emulator)
            check(body["complete"] and body["text"] == want, "GET output is not the uncapped answer")
            seen.append(f"GET /generations/{{id}}/output -> 200, {len(want)} chars == the uncapped answer")
            seen += self._errors_and_cancel(http, job_id)
        calls = self.lam.invocations
        seen.append(
            f"Step Functions -> start-lambda: {calls.count('GenerateChunkFunction')} GenerateChunk, "
            f"{calls.count('FinalizeFunction')} Finalize invocations so far"
        )
        return seen

    def _until_ended(self, http: httpx.Client, job_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + EXECUTION_TIMEOUT
        while True:
            got = http.get(f"/generations/{job_id}")
            check(got.status_code == 200, f"GET /generations/{job_id}: {got.status_code} {got.text[:200]}")
            view = dict(got.json())
            if view["status"] not in ("queued", "running"):
                return view
            check(
                time.monotonic() < deadline, f"job {job_id} still {view['status']} after {EXECUTION_TIMEOUT}s"
            )
            time.sleep(2)

    def _errors_and_cancel(self, http: httpx.Client, job_id: str) -> list[str]:
        bad = http.post("/generations", json={"messages": "not a list"})
        check(
            bad.status_code == 400 and bad.json().get("error") == "RequestInvalid",
            f"bad request: {bad.text[:200]}",
        )
        unknown = http.get("/generations/no-such-job-0000")
        check(unknown.status_code == 404, f"unknown id: {unknown.status_code} {unknown.text[:200]}")
        again = http.delete(f"/generations/{job_id}")
        check(again.status_code == 409, f"DELETE of an ended job: {again.status_code} {again.text[:200]}")
        manifest = json.loads(self.text(f"jobs/{job_id}/manifest.json") or "{}")
        self.seed(manifest["owner"])  # a queued job of this caller (start-api's), never started
        cancelled = http.delete(f"/generations/{JOB}")
        check(
            cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled",
            f"DELETE /generations/{JOB}: {cancelled.status_code} {cancelled.text[:200]}",
        )
        return [
            f"POST /generations (messages not a list) -> 400 {bad.json()['error']}",
            "GET /generations/no-such-job-0000 -> 404",
            f"DELETE /generations/{{ended id}} -> 409 {again.json().get('error')}",
            f"DELETE /generations/{JOB} (queued) -> 200 cancelled",
        ]

    # ---- the other sample events, through start-lambda's warm containers ---------------------------

    def other_events(self) -> list[str]:
        """Every event of events/ not used above, each answer checked (the same containers' code)."""
        from longform_core.api.route_helpers import caller_owner

        owner = caller_owner(load("api_get_generation.json")["requestContext"]["identity"], "IAM")
        seen: list[str] = []
        for name, status in (
            ("finalize_context_exhausted.json", "context_exhausted"),
            ("finalize_failed.json", "failed"),
        ):
            self.seed(owner)
            self.via_start_lambda("GenerateChunkFunction", load("generate_chunk.json"))
            out = self.via_start_lambda("FinalizeFunction", load(name))
            check(out.get("status") == status, f"FinalizeFunction on {name}: {out}")
            seen.append(f"FinalizeFunction {name} -> {status}")
        self.seed(owner)
        view = self.via_start_lambda("ApiFunction", load("api_get_generation.json"))
        check(
            view.get("statusCode") == 200 and json.loads(view["body"])["status"] == "queued", f"GET: {view}"
        )
        self.via_start_lambda("GenerateChunkFunction", load("generate_chunk.json"))
        self.via_start_lambda("FinalizeFunction", load("finalize.json"))
        page = self.via_start_lambda("ApiFunction", load("api_get_output.json"))
        want = expected_answer(load("request.json"), self.emulator)
        check(page.get("statusCode") == 200 and json.loads(page["body"])["text"] == want, "GET output")
        seen.append(
            "ApiFunction api_get_generation.json -> 200 queued; api_get_output.json -> 200 == uncapped"
        )
        self.seed(owner)
        deleted = self.via_start_lambda("ApiFunction", load("api_delete_generation.json"))
        check(
            deleted.get("statusCode") == 200 and json.loads(deleted["body"])["status"] == "cancelled",
            "DELETE",
        )
        seen.append("ApiFunction api_delete_generation.json -> 200 cancelled")
        self.seed(owner)
        self.via_start_lambda("GenerateChunkFunction", load("generate_chunk.json"))
        swept = self.via_start_lambda("SweeperFunction", load("sweeper_execution_aborted.json"))
        check(
            (swept.get("action"), swept.get("status")) == ("finalized", "failed"), f"Sweeper aborted: {swept}"
        )
        seen.append("SweeperFunction sweeper_execution_aborted.json -> finalized failed")
        key, body = "requests/notes/lighthouse lenses.txt", b"A note on lighthouse lenses."
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        (outcome,) = self.via_start_lambda("DropFolderFunction", load("s3_notification.json"))["outcomes"]
        check(outcome.get("action") == "started", f"DropFolder s3_notification: {outcome}")
        self.wait_job(self.job_arn(outcome["job_id"]))
        want = expected_answer({"prompt": body.decode()}, self.emulator)
        check(self.text("results/notes/lighthouse lenses.md") == want, "the .txt request's result")
        seen.append("DropFolderFunction s3_notification.json -> started; SUCCEEDED, results/*.md == uncapped")
        return seen
