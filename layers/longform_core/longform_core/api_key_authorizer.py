"""The API key authorizer (``ApiAuth=API_KEY``): the key from ``x-api-key`` or from OpenAI's
``Authorization: Bearer <key>`` (what the OpenAI SDKs send for ``api_key=``), handed to API Gateway
as the request's API key.

The API reads its keys from this authorizer (``x-amazon-apigateway-api-key-source: AUTHORIZER``), so
both headers reach the same check: API Gateway matches ``usageIdentifierKey`` against the usage plan's
keys (an unknown key is its 403), throttles and counts it on that plan, and puts the key's id in
``requestContext.identity.apiKeyId``: the caller identity that owns jobs, batches and files is the
same whichever header carried the key. No key at all is denied (API Gateway's 403), not raised: a
raised ``Unauthorized`` (401) would count as a function error and sound the errors alarm for every
stray request. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

BEARER = "bearer "


def api_key_of(headers: dict[str, str] | None) -> tuple[str, str] | None:
    """(key, the header that carried it): ``x-api-key`` first, else a Bearer token."""
    lowered = {k.lower(): v for k, v in (headers or {}).items() if isinstance(v, str)}
    key = lowered.get("x-api-key", "").strip()
    if key:
        return key, "x-api-key"
    auth = lowered.get("authorization", "").strip()
    if auth.lower().startswith(BEARER) and auth[len(BEARER) :].strip():
        return auth[len(BEARER) :].strip(), "bearer"
    return None


def authorize(event: dict[str, Any]) -> dict[str, Any]:
    """A REQUEST authorizer's answer: allow, the key as the usage identifier (deny without a key)."""
    found = api_key_of(event.get("headers"))
    effect = "Allow" if found is not None else "Deny"
    answer: dict[str, Any] = {
        "principalId": "apikey",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": event["methodArn"]}],
        },
        "context": {"keySource": found[1] if found else "none"},
    }
    if found is not None:
        answer["usageIdentifierKey"] = found[0]
    return answer
