"""Sweeper: an execution that ended FAILED / TIMED_OUT / ABORTED ends its job if nothing else did
(Step Functions status change -> EventBridge -> this function)."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from longform_core.runtime import get_services
from longform_core.sweep import sweep_execution

logger = Logger()
tracer = Tracer()
metrics = Metrics()


# the execution's name is its job id (the input's job_id may be left out of a large event)
@logger.inject_lambda_context(correlation_id_path="detail.name")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcome = sweep_execution(event, get_services(), metrics=metrics)
    if outcome.job_id:
        logger.set_correlation_id(outcome.job_id)
    log = logger.warning if outcome.action == "ignored" else logger.info
    log(f"sweeper: {outcome.action}", extra={"outcome": outcome.model_dump(exclude_none=True)})
    return outcome.model_dump(exclude_none=True)
