"""BatchSplit: every line of a batch becomes a job (a Step Functions task of the batch workflow)."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from longform_core.batch.split import BatchTaskInput, split_batch
from longform_core.runtime import get_services

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path="batch_id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@event_parser(model=BatchTaskInput)
def lambda_handler(event: BatchTaskInput, context: LambdaContext) -> dict[str, Any]:
    split = split_batch(event, get_services())
    logger.info("batch split", extra={"lines": split.lines, "max_concurrency": split.max_concurrency})
    return split.model_dump()
