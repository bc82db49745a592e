"""One way to choose the provider for every local command, and one way to hand it to the cloud."""

from __future__ import annotations

import pytest

from longform.local.cloud import CloudConfig
from longform.local.providers import Provider, ProviderOptions, choose_provider


def test_the_emulator_takes_the_runs_cap_and_window_unless_its_settings_say_otherwise(monkeypatch) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    options = ProviderOptions(max_tokens_per_request=1234, context_length=9000)
    with choose_provider(options) as provider:
        assert provider.kind == "emulator" and provider.emulator is not None
        assert (provider.emulator.settings.cap, provider.emulator.settings.context_length) == (1234, 9000)
        assert provider.base_url == provider.emulator.base_url
    explicit = ProviderOptions(emulator=True, max_tokens_per_request=1234, emulator_settings={"cap": 77})
    with choose_provider(explicit) as provider:
        assert provider.emulator is not None and provider.emulator.settings.cap == 77


def test_a_server_is_no_emulator() -> None:
    options = ProviderOptions(base_url="http://127.0.0.1:1/v1", model="m")
    with choose_provider(options, check=False) as provider:
        assert (provider.kind, provider.emulator, provider.model) == ("server", None, "m")


@pytest.mark.parametrize("kind", ["emulator", "server", "deepinfra"])
def test_the_cloud_gets_the_providers_url_model_and_key(kind: str) -> None:
    provider = Provider(kind, "http://127.0.0.1:9/v1", "k" if kind != "emulator" else None, "a/model", "x")
    config = CloudConfig.for_provider(provider, max_tokens_per_request=500, state_dir=None)
    assert (config.provider_base_url, config.model, config.api_key) == (
        provider.base_url,
        "a/model",
        provider.api_key,
    )
    assert config.parameters()["MaxTokensPerRequest"] == "500"
    with pytest.raises(TypeError):
        CloudConfig.for_provider(provider, not_a_setting=1)
