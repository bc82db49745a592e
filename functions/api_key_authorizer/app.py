"""API key authorizer (ApiAuth=API_KEY): x-api-key or Authorization: Bearer <key>, one usage plan."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from longform_core.api_key_authorizer import authorize

logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    answer = authorize(event)  # denied without a key; the key itself is never logged
    logger.info("authorized", extra={"key_source": answer["context"]["keySource"]})
    return answer
