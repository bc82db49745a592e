"""BatchDropFolder: an object created as batches/{name}.jsonl submits a batch (S3 -> EventBridge)."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from longform_core.batch.drop_folder import handle_event
from longform_core.runtime import get_services

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcomes = handle_event(event, get_services(), metrics=metrics)
    for outcome in outcomes:  # keys, names and problems only: never the requests' text
        log = logger.warning if outcome.action == "rejected" else logger.info
        log(f"batch drop folder: {outcome.action}", extra={"outcome": outcome.model_dump(exclude_none=True)})
    return {"outcomes": [o.model_dump(exclude_none=True) for o in outcomes]}
