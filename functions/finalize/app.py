"""Finalize: assemble the output of a job and write result.json (a Step Functions task)."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from longform_core.finalize import FinalizeTaskInput, finalize
from longform_core.runtime import get_services

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path="job_id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@event_parser(model=FinalizeTaskInput)
def lambda_handler(event: FinalizeTaskInput, context: LambdaContext) -> dict[str, Any]:
    result = finalize(event, get_services(), metrics=metrics)
    logger.info("job finalized", extra={"result": result.model_dump()})
    return result.model_dump()
