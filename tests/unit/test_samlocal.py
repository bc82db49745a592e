"""make sam-local's host-network patch (samlocal/hostnet.py) and its pin: the SAM CLI version
setup.sh installs is the one the patch was written for, and the patch rewrites exactly SAM's Lambda
containers (the runtime interface emulator with its port 8080 published) to host networking."""

from __future__ import annotations

import importlib.util
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

SAMLOCAL = Path(__file__).resolve().parents[2] / "samlocal"


def load_hostnet(
    monkeypatch: pytest.MonkeyPatch, *, enabled: bool
) -> tuple[types.ModuleType, list[dict[str, Any]]]:
    """hostnet.py imported against a stand-in for docker-py's ContainerCollection."""
    created: list[dict[str, Any]] = []

    class ContainerCollection:
        def create(self, image: str, command: Any = None, **kwargs: Any) -> dict[str, Any]:
            created.append({"image": image, "command": command, **kwargs})
            return created[-1]

    containers = types.ModuleType("docker.models.containers")
    containers.ContainerCollection = ContainerCollection  # type: ignore[attr-defined]
    for name, module in (
        ("docker", types.ModuleType("docker")),
        ("docker.models", types.ModuleType("docker.models")),
        ("docker.models.containers", containers),
    ):
        monkeypatch.setitem(sys.modules, name, module)
    if enabled:
        monkeypatch.setenv("LONGFORM_SAM_HOST_NETWORK", "1")
    else:
        monkeypatch.delenv("LONGFORM_SAM_HOST_NETWORK", raising=False)
    spec = importlib.util.spec_from_file_location("longform_sam_hostnet_test", SAMLOCAL / "hostnet.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, created


def test_setup_pins_the_version_the_patch_is_written_for() -> None:
    setup = (SAMLOCAL / "setup.sh").read_text(encoding="utf-8")
    pinned = re.search(r"^SAM_CLI_VERSION=(\S+)", setup, re.MULTILINE)
    hostnet = (SAMLOCAL / "hostnet.py").read_text(encoding="utf-8")
    written_for = re.search(r'^SAM_CLI_VERSION = "([^"]+)"', hostnet, re.MULTILINE)
    assert pinned and written_for
    assert pinned.group(1) == written_for.group(1) == "1.170.0"
    # the install is exact, and setup.sh runs the pin check right after it
    assert '"aws-sam-cli==$SAM_CLI_VERSION"' in setup
    assert 'check_pin.py" "$SAM_CLI_VERSION"' in setup


def test_the_emulator_container_gets_the_host_network_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    hostnet, created = load_hostnet(monkeypatch, enabled=True)
    collection = sys.modules["docker.models.containers"].ContainerCollection()  # type: ignore[attr-defined]
    collection.create(
        "samcli/lambda-python3.13:rapid-x86_64",
        None,
        entrypoint=["/var/rapid/aws-lambda-rie", "--log-level", "error"],
        ports={"8080": ("127.0.0.1", 45678)},
        environment={"A": "b"},
    )
    (call,) = created
    assert call["network_mode"] == "host"
    assert "ports" not in call
    entry = call["entrypoint"]
    assert entry[:3] == ["/var/rapid/aws-lambda-rie", "--log-level", "error"]
    assert entry[3:5] == ["--runtime-interface-emulator-address", "127.0.0.1:45678"]
    assert entry[5] == "--runtime-api-address" and entry[6].startswith("127.0.0.1:")
    assert int(entry[6].rsplit(":", 1)[1]) > 0
    assert call["environment"] == {"A": "b"}
    assert hostnet.RIE_ENTRYPOINT == "/var/rapid/aws-lambda-rie"


def test_other_containers_and_a_disabled_patch_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    _, created = load_hostnet(monkeypatch, enabled=True)
    collection = sys.modules["docker.models.containers"].ContainerCollection()  # type: ignore[attr-defined]
    collection.create("busybox", ["true"], entrypoint=["/bin/sh"], ports={"80": ("127.0.0.1", 8000)})
    assert created[-1]["ports"] == {"80": ("127.0.0.1", 8000)} and "network_mode" not in created[-1]
    _, created = load_hostnet(monkeypatch, enabled=False)
    collection = sys.modules["docker.models.containers"].ContainerCollection()  # type: ignore[attr-defined]
    collection.create("x", None, entrypoint=["/var/rapid/aws-lambda-rie"], ports={"8080": ("127.0.0.1", 1)})
    assert created[-1]["ports"] == {"8080": ("127.0.0.1", 1)} and "network_mode" not in created[-1]
