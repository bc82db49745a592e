"""The raw-completion rung: the answer so far continued as a plain completion (``/v1/completions``).

Servers that ignore or refuse a chat prefill (``transformers serve``, llama-cpp-python's server,
vLLM without ``continue_final_message``, ...) mostly still serve ``/v1/completions`` with a raw
prompt. The conversation and the answer so far are rendered with the model's chat template
(``chat_template.py``) exactly as the server would render a continued final message, and the
server continues that text: nothing to ignore, no echo (``echo`` is not asked for), no preamble,
the seam exact. The reply has the same ``finish_reason`` and ``usage`` as a chat completion; the
provider client sends a body with ``prompt`` (and no ``messages``) to ``/completions``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .chat_template import ChatTemplate, RenderedPrompt, TemplateError, render_continuation, resolve_template
from .prefill import LADDER, Rung
from .request import GenerationRequest

if TYPE_CHECKING:
    from .services import Services

logger = logging.getLogger(__name__)

# chat-only fields a /completions endpoint does not take (vLLM and transformers answer 4xx to
# fields they do not know)
CHAT_ONLY_FIELDS = ("messages", "continue_final_message", "add_generation_prompt", "reasoning_effort")


def completion_body(chat_body: Mapping[str, Any], prompt: str) -> dict[str, Any]:
    """The ``/completions`` body of a chat body: the same model, limits and sampling, ``prompt``
    instead of the messages."""
    body = {k: v for k, v in chat_body.items() if k not in CHAT_ONLY_FIELDS}
    body["prompt"] = prompt
    return body


def render_for(request: GenerationRequest, template: ChatTemplate, answer_so_far: str) -> RenderedPrompt:
    """The prompt continuing ``answer_so_far`` after the request's conversation."""
    messages = [m.to_wire() for m in request.conversation()]
    return render_continuation(template, messages, answer_so_far)


def find_template(
    request: GenerationRequest,
    model: str,
    *,
    deployment: str | None,
    server_props: Callable[[], Mapping[str, Any] | None] | None,
) -> ChatTemplate | None:
    """The template for this job: the request's, the deployment's, the server's, or the family's.

    ``server_props`` (the provider's ``GET /props``) is only asked when neither the request nor
    the deployment names one."""
    if request.chat_template or deployment:
        return resolve_template(model=model, requested=request.chat_template, deployment=deployment)
    props = server_props() if server_props is not None else None
    return resolve_template(model=model, server_props=props)


class CompletionRung:
    """The completion rung of one chunk's ladder: its template, looked up at most once, and the
    ``/completions`` body of an answer so far."""

    def __init__(self, services: Services, request: GenerationRequest, model: str) -> None:
        self._services = services
        self._request = request
        self._model = model
        self._template: tuple[ChatTemplate | None] | None = None

    def template(self) -> ChatTemplate | None:
        if self._template is None:
            props = getattr(self._services.provider, "server_props", None)
            self._template = (
                find_template(
                    self._request,
                    self._model,
                    deployment=self._services.settings.chat_template,
                    server_props=props if callable(props) else None,
                ),
            )
        return self._template[0]

    def available(self, rung: Rung) -> bool:
        """May the ladder step from ``rung`` onto this one? (a template is known; only asked when
        the rung is above this one)."""
        return LADDER.index(rung.style) < LADDER.index("completion") and self.template() is not None

    def prepare(self, chat_body: Mapping[str, Any], answer_so_far: str) -> tuple[dict[str, Any], str] | None:
        """(the ``/completions`` body, the answer's trailing whitespace it leaves out), or None when
        no template is known or it cannot render this conversation."""
        template = self.template()
        if template is None:
            return None
        try:
            rendered = render_for(self._request, template, answer_so_far)
        except TemplateError as exc:
            logger.warning("the chat template (%s) cannot render this job: %s", template.origin, exc)
            return None
        return completion_body(chat_body, rendered.text), rendered.trimmed
