"""What every router's routes share: the request's services, caller, body, base path and metrics.

Powertools splits one resolver's routes over several ``Router`` objects (``app.include_router``);
an included router's ``current_event`` and ``context`` are the resolver's, so one ``RouteHelpers``
per router reads the request the resolver is answering, and the data ``handle`` puts in the
context (``services``, ``metrics``) reaches every router alike. The routers never import from each
other: ``routes.py`` (/generations), ``batch_routes.py`` (/batches), ``openai_routes.py`` and
``openai_batch_routes.py`` (/v1) each hold a ``RouteHelpers`` of their own router.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.logging.exceptions import OrphanedChildLoggerError

from ..errors import Problem, RequestInvalid
from ..runtime import get_services
from ..services import Services
from .errors import PayloadTooLarge

logger = Logger(child=True)

IDEMPOTENCY_KEY_MAX = 255
LIST_LIMIT_DEFAULT = 20
LIST_LIMIT_MAX = 100
BODY_REQUIRED = "required: a JSON request with messages or prompt"


def caller_owner(identity: Mapping[str, Any] | None, owner_identity: str) -> str:
    """Who the caller is, as the owner of the jobs it submits (``Manifest.owner``).

    From API Gateway's request context: the API key's id when the API uses keys
    (``ApiAuth=API_KEY``), else the IAM principal that signed the request (``userArn``, else
    ``caller``). A request with neither only reaches the function where nothing authenticates it
    (``longform serve`` on loopback, whose requests all come from 127.0.0.1): its source address.
    """
    identity = identity or {}
    if owner_identity == "API_KEY" and identity.get("apiKeyId"):
        return f"apikey:{identity['apiKeyId']}"
    for field in ("userArn", "caller"):
        if identity.get(field):
            return f"iam:{identity[field]}"
    if identity.get("sourceIp"):
        return f"ip:{identity['sourceIp']}"
    return "anonymous"


class RouteHelpers:
    """HTTP in and out for the routes of one router (its event and context are the resolver's)."""

    def __init__(self, router: APIGatewayRouter):
        self.router = router

    def services(self) -> Services:
        """The services ``handle`` was given, else the Lambda container's."""
        services: Services | None = self.router.context.get("services")
        return services if services is not None else get_services()

    def metric(self, name: str) -> None:
        metrics = self.router.context.get("metrics")
        if metrics is not None:
            metrics.add_metric(name=name, unit="Count", value=1)

    @staticmethod
    def log_keys(**keys: str) -> None:
        """Keys on every log line of this request (the handler's Logger clears them per request)."""
        with contextlib.suppress(OrphanedChildLoggerError):  # no parent Logger: served without the handler
            logger.append_keys(**keys)

    def base_path(self) -> str:
        """The stage prefix when the client called the execute-api endpoint (its URLs include the stage)."""
        event = self.router.current_event
        ctx = event.request_context
        domain = ctx.domain_name or event.headers.get("host") or ""
        stage = ctx.stage
        if stage and stage != "$default" and ".execute-api." in domain:
            return f"/{stage}"
        return ""

    def owner(self) -> str:
        """The owner of this request's caller: the only one whose jobs and batches it sees."""
        context = self.router.current_event.raw_event.get("requestContext") or {}
        return caller_owner(context.get("identity"), self.services().settings.owner_identity)

    def request_body(self, limit: int, required: str = BODY_REQUIRED) -> bytes:
        """The raw body (base64 decoded), at most ``limit`` bytes and not blank (else ``required``)."""
        event = self.router.current_event
        raw = event.body or ""
        if event.is_base64_encoded:
            try:
                body = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise RequestInvalid([Problem("(body)", "not valid base64")]) from exc
        else:
            body = raw.encode("utf-8")
        if len(body) > limit:
            raise PayloadTooLarge(len(body), limit)
        if not body.strip():
            raise RequestInvalid([Problem("(body)", required)])
        return body

    def header(self, name: str) -> str:
        """A request header, whatever its case ("" when absent)."""
        headers = self.router.current_event.headers
        lowered = name.lower()
        return next((v for k, v in headers.items() if k.lower() == lowered), "")
