"""The OpenAI-compatible routes of the API function (``/v1``): the models. Chat Completions are served
by ``longform serve`` (``longform/local/openai_chat.py``: an API Gateway proxy answer can neither
stream nor wait for a long job); the Batch API is ``openai_batch_routes.py``. Every ``/v1`` error is
answered in OpenAI's shape (``errors.error_response``)."""

import time
from typing import Any

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from ..openai.chat import model_list
from .route_helpers import RouteHelpers
from .schemas import JSON

openai_router = APIGatewayRouter()  # type: ignore[no-untyped-call]  # Powertools' __init__ has no annotations
http = RouteHelpers(openai_router)


@openai_router.get(
    "/v1/models",
    operation_id="listModelsOpenAI",
    summary="The models (OpenAI's Models API)",
    description="The deployment's default model and its AllowedModels, as OpenAI's `list` of `model`.",
    tags=["openai"],
    responses={
        200: {"description": "OpenAI's model list", "content": {JSON: {"schema": {"type": "object"}}}}
    },
)
def list_models() -> dict[str, Any]:
    settings = http.services().settings
    models = list(dict.fromkeys((settings.default_model, *settings.allowed_models)))
    return model_list(models, int(time.time()))
