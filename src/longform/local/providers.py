"""Which provider a local command talks to, chosen explicitly, and checked before anything starts.

- ``--emulator``: the built-in emulator on a free loopback port (``make run`` always uses it);
- ``--base-url URL``: any OpenAI-compatible server; without ``--model`` its ``/models`` is asked:
  one model is used, several are listed (exit 2);
- otherwise real DeepInfra when the API key variable (``DEEPINFRA_API_KEY``) is set, said on the
  first line, else the emulator.

A key goes only where it belongs: ``DEEPINFRA_API_KEY`` only to DeepInfra's URL; another server
gets a key only when ``--api-key-env VAR`` names the variable for it (``key_for``).

A provider that cannot be reached fails in seconds with one line (a bounded retry of a cheap
``GET /models``), not after minutes of the state machine's retries.

Every local command (``run``, ``resume``, ``serve``, ``drop``, ``batch``) chooses its provider with
``choose_provider`` and turns it into the local cloud's configuration with ``CloudConfig.for_provider``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import httpx
from longform_core.config import DEEPINFRA_BASE_URL
from longform_core.config import DEFAULT_MODEL as DEEPINFRA_DEFAULT_MODEL

EMULATOR_MODEL = "longform/emulated-writer"
# the built-in emulator, DeepInfra (its key variable is set), or another OpenAI-compatible server
ProviderKind = Literal["emulator", "deepinfra", "server"]
DEFAULT_API_KEY_ENV = "DEEPINFRA_API_KEY"
if TYPE_CHECKING:
    from longform.emulator.server import EmulatorServer

PROBE_ATTEMPTS = 3
PROBE_TIMEOUT_SECONDS = 5.0


class ProviderChoiceError(Exception):
    """A provider that cannot be used as given: one line for the user, and the exit code."""

    def __init__(self, message: str, *, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class ProviderOptions:
    emulator: bool = False  # force the emulator
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None  # None: DEEPINFRA_API_KEY, and only for DeepInfra's URL
    emulator_settings: dict[str, Any] = field(default_factory=dict)  # EmulatorSettings fields
    # the emulator's per-request cap and context window, unless emulator_settings sets them
    max_tokens_per_request: int | None = None
    context_length: int | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def key_env(self) -> str:
        return self.api_key_env or DEFAULT_API_KEY_ENV


def _host(url: str) -> str:
    return (httpx.URL(url).host or "").lower()


def key_for(base_url: str, api_key_env: str | None) -> str | None:
    """The API key to send to ``base_url``: the variable ``--api-key-env`` names, when it names one;
    otherwise ``DEEPINFRA_API_KEY``, and only when ``base_url`` is DeepInfra's own host. A key is
    never sent to a server it was not meant for."""
    if api_key_env:
        return os.environ.get(api_key_env) or None
    if _host(base_url) == _host(DEEPINFRA_BASE_URL):
        return os.environ.get(DEFAULT_API_KEY_ENV) or None
    return None


@dataclass(frozen=True)
class Provider:
    kind: ProviderKind
    base_url: str
    api_key: str | None
    model: str
    label: str
    # the emulator's server when the provider is the emulator (it counts the requests it has at once)
    emulator: EmulatorServer | None = field(default=None, compare=False, repr=False)


def _get_models(base_url: str, api_key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    last: Exception | None = None
    for attempt in range(PROBE_ATTEMPTS):
        try:
            return httpx.get(base_url.rstrip("/") + "/models", headers=headers, timeout=PROBE_TIMEOUT_SECONDS)
        except httpx.HTTPError as exc:
            last = exc
            if attempt + 1 < PROBE_ATTEMPTS:
                time.sleep(0.5 * (attempt + 1))
    reason = "connection refused" if isinstance(last, httpx.ConnectError) else type(last).__name__
    raise ProviderChoiceError(
        f"cannot reach the provider at {base_url} ({reason}, {PROBE_ATTEMPTS} tries): is the server "
        "running, and is the URL its OpenAI-compatible base (ending in /v1)?"
    )


def model_ids(response: httpx.Response) -> list[str]:
    try:
        data = response.json()
    except ValueError:
        return []
    items = data.get("data") if isinstance(data, dict) else None
    return [str(m["id"]) for m in items or [] if isinstance(m, dict) and m.get("id")]


def check_server(base_url: str, api_key: str | None, model: str | None, *, key_env: str) -> str:
    """The model to use on ``base_url``: ``model``, or the server's only one. Raises
    ``ProviderChoiceError`` when the server is unreachable, refuses the key, or the model is unclear."""
    response = _get_models(base_url, api_key)
    if response.status_code in (401, 403):
        hint = (
            f"the key in ${key_env} was refused"
            if api_key
            else f"no API key was sent (--api-key-env VAR sends the key held in $VAR; ${key_env} is "
            "sent only to its own provider)"
        )
        raise ProviderChoiceError(f"{base_url} answered {response.status_code} to GET /models: {hint}")
    if model:
        return model
    ids = model_ids(response) if response.status_code == 200 else []
    if len(ids) == 1:
        return ids[0]
    if ids:
        listed = "\n".join(f"  {m}" for m in ids)
        raise ProviderChoiceError(
            f"{base_url} serves {len(ids)} models; choose one with --model:\n{listed}", exit_code=2
        )
    raise ProviderChoiceError(
        f"{base_url} did not list its models (GET /models: HTTP {response.status_code}); pass --model",
        exit_code=2,
    )


@contextlib.contextmanager
def choose_provider(options: ProviderOptions, *, check: bool = True) -> Iterator[Provider]:
    """The provider ``options`` select (an emulator lives as long as the context)."""
    if options.base_url and not options.emulator:
        key = key_for(options.base_url, options.api_key_env)
        model = options.model
        if check:
            model = check_server(options.base_url, key, options.model, key_env=options.key_env)
        elif not model:
            raise ProviderChoiceError("--base-url needs --model (or a server that lists one)", exit_code=2)
        yield Provider("server", options.base_url, key, model, f"the server at {options.base_url}")
        return
    key = os.environ.get(options.key_env) or None
    if key and not options.emulator:
        model = options.model or DEEPINFRA_DEFAULT_MODEL
        if check:
            check_server(DEEPINFRA_BASE_URL, key, model, key_env=options.key_env)
        label = f"DeepInfra (because ${options.key_env} is set; --emulator for the local emulator)"
        yield Provider("deepinfra", DEEPINFRA_BASE_URL, key, model, label)
        return
    from longform.emulator.server import EmulatorServer, EmulatorSettings

    fields = dict(options.emulator_settings)
    if options.max_tokens_per_request:
        fields.setdefault("cap", options.max_tokens_per_request)
    if options.context_length:
        fields.setdefault("context_length", options.context_length)
    with EmulatorServer(EmulatorSettings().updated(**fields)) as server:
        yield Provider(
            "emulator",
            server.base_url,
            None,
            options.model or EMULATOR_MODEL,
            f"the emulator at {server.base_url}",
            emulator=server,
        )
