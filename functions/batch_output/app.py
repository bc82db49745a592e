"""BatchOutput: a batch's output.jsonl, summary and completion event (a Step Functions task)."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from longform_core.batch.finalize import BatchOutputTaskInput, write_output
from longform_core.runtime import get_services

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path="batch_id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@event_parser(model=BatchOutputTaskInput)
def lambda_handler(event: BatchOutputTaskInput, context: LambdaContext) -> dict[str, Any]:
    result = write_output(event, get_services(), metrics=metrics)
    logger.info("batch output written", extra={"result": result.model_dump()})
    return result.model_dump()
