"""The emulator's prompt cache: how many prompt tokens a request shares with an earlier one.

DeepInfra reports ``usage.prompt_tokens_details.cached_tokens``; the emulator reports the prompt
tokens of the latest earlier request of the same conversation whose prefill is a prefix of this
request's prefill (the continuation chunks of one job).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict, deque

MAX_PREFIX_CONVERSATIONS = 512
HISTORY_PER_CONVERSATION = 8


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class PrefixCache:
    """Thread-safe; bounded to the most recent conversations."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._prefixes: OrderedDict[str, deque[tuple[int, str, int]]] = OrderedDict()

    def clear(self) -> None:
        with self._lock:
            self._prefixes.clear()

    def cached_tokens(self, conversation_key: str, prefill: str, prompt: int) -> int:
        """Prompt tokens of the latest earlier request of this conversation whose prefill is a
        prefix of this one; remembers this request."""
        digest = _digest(prefill)
        with self._lock:
            history = self._prefixes.get(conversation_key)
            cached = 0
            if history is not None:
                self._prefixes.move_to_end(conversation_key)
                for length, prefix_digest, tokens in reversed(history):
                    if length <= len(prefill) and (
                        prefix_digest == digest
                        if length == len(prefill)
                        else _digest(prefill[:length]) == prefix_digest
                    ):
                        cached = tokens
                        break
            else:
                history = deque(maxlen=HISTORY_PER_CONVERSATION)
                self._prefixes[conversation_key] = history
                while len(self._prefixes) > MAX_PREFIX_CONVERSATIONS:
                    self._prefixes.popitem(last=False)
            history.append((len(prefill), digest, prompt))
            return cached
