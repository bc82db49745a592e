"""GenerateChunk: one continuation chunk of a job (a Step Functions task)."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from longform_core.chunk import ChunkTaskInput, generate_chunk
from longform_core.runtime import get_services

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path="job_id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@event_parser(model=ChunkTaskInput)
def lambda_handler(event: ChunkTaskInput, context: LambdaContext) -> dict[str, Any]:
    result = generate_chunk(
        event, get_services(), remaining_ms=context.get_remaining_time_in_millis, metrics=metrics
    )
    logger.info("chunk committed", extra={"chunk": result.model_dump()})
    return result.model_dump()
