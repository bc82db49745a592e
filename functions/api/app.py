"""Api: the HTTP API of longform (API Gateway REST proxy events, Powertools REST resolver)."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from longform_core.api import handle

logger = Logger()
tracer = Tracer()
metrics = Metrics()


# correlation id: the API Gateway request id; the routes add the job id as a key
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context, metrics=metrics)
