"""``runs/{job id}.json``: how ``longform run`` started a local job, so ``resume`` continues it with
the same provider and budgets, and ``serve`` resumes only the jobs of its own provider.

The settings a record keeps are declared once, in ``RunSettings``: ``RunOptions`` (``run_options.py``,
what a run was asked: None where not given) and ``RunRecord`` (what it was started with) both are
``RunSettings``, so a new setting is recorded, and taken back by ``resume``, by being added there.

Never the API key: only the name of the variable that holds it. Records written before this model
(plain dicts with the same names) load as they are; a record that does not parse is no record.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from longform_core.request import DEFAULT_MAX_TOKENS_PER_REQUEST
from pydantic import BaseModel, ConfigDict, Field

from .providers import Provider, ProviderKind, ProviderOptions


class RunSettings(BaseModel):
    """The settings of a local run that its record keeps, and ``resume`` takes back when not given."""

    max_tokens_per_request: int | None = None
    context_length: int | None = None
    chunk_timeout: float | None = None
    deadline_margin: float = 30.0
    stream: bool | None = None  # ask the provider with streaming (None: the deployment default)

    def given_or_recorded(self, record: RunSettings) -> dict[str, Any]:
        """Each setting of ``self``, or where it was not given (None), the recorded one."""
        mine = {name: getattr(self, name) for name in RunSettings.model_fields}
        return {name: getattr(record, name) if value is None else value for name, value in mine.items()}


class RunRecord(RunSettings):
    """``runs/{id}.json``: the settings a job was started with (the per-request cap resolved), its
    provider and its ``--out``."""

    model_config = ConfigDict(extra="ignore")

    provider: ProviderKind
    base_url: str | None = None  # None for the emulator: a new one is started on another port
    model: str | None = None
    api_key_env: str | None = None
    emulator_settings: dict[str, Any] = Field(default_factory=dict)  # EmulatorSettings fields
    max_tokens_per_request: int = Field(default=DEFAULT_MAX_TOKENS_PER_REQUEST, ge=1)
    out: str | None = None  # the absolute --out the answer is written to (None: stdout); resume's default
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def started(cls, provider: Provider, chosen: ProviderOptions, **settings: Any) -> RunRecord:
        """The record of a job started on ``provider``, chosen by ``chosen``; ``settings``: the
        run's own (``RunSettings``: max_tokens_per_request, context_length, ...) and ``out``."""
        return cls(
            provider=provider.kind,
            base_url=None if provider.kind == "emulator" else provider.base_url,
            model=provider.model,
            api_key_env=chosen.api_key_env,
            emulator_settings=chosen.emulator_settings,
            **settings,
        )

    def provider_options(self, given: ProviderOptions) -> ProviderOptions:
        """The provider options of a resume: what the user gave, the rest as the job was started
        (a --emulator or --base-url given chooses anew: the recorded URL and key variable go)."""
        explicit = given.emulator or given.base_url is not None
        return ProviderOptions(
            emulator=given.emulator or (not explicit and self.provider == "emulator"),
            base_url=given.base_url if explicit else self.base_url,
            model=given.model or self.model,
            api_key_env=given.api_key_env if explicit else self.api_key_env or given.api_key_env,
            emulator_settings={**self.emulator_settings, **given.emulator_settings},
        )

    def same_provider(self, provider: Provider) -> bool:
        """Whether ``provider`` is the one the job was started on (serve resumes only those: another
        provider may cost money)."""
        if self.provider != provider.kind:
            return False
        return provider.kind == "emulator" or self.base_url == provider.base_url

    @classmethod
    def parse(cls, raw: bytes | str) -> RunRecord | None:
        try:
            return cls.model_validate_json(raw)
        except ValueError:
            return None
