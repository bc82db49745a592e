"""The tests' API Gateway events come from the one builder the local API uses (longform.local.apigw)."""

from longform.local.apigw import api_event, body_of, header

__all__ = ["api_event", "body_of", "header"]
