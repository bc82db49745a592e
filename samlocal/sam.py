"""SAM CLI as `make sam-local` drives it: the x86_64 build, the environment file, `sam local invoke`
(judged by its output: SAM exits 0 even when the invocation failed) and the long-running
`start-lambda` / `start-api` servers (stopped by their process id when the run ends)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from longform.local.aws import FAKE_CREDENTIALS

from .local_aws import free_port, wait_for_port

SAM_ENV = {
    **FAKE_CREDENTIALS,
    "SAM_CLI_TELEMETRY": "0",
    "SAM_CLI_DISABLE_VERSION_CHECK": "1",
    "LONGFORM_SAM_HOST_NETWORK": "1",  # hostnet.py: containers on the host's network, loopback only
    "AWS_EC2_METADATA_DISABLED": "true",
}


class SamFailed(RuntimeError):
    pass


class Sam:
    def __init__(self, sam: str, root: Path, work: Path, py313: str, arch: str = "x86_64"):
        self.sam = sam
        self.root = root
        self.work = work
        self.arch = arch
        self.built = work / "build" / "template.yaml"
        self.env_file = work / "env.json"
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        path = f"{Path(sam).parent}:{Path(py313).parent}:{os.environ.get('PATH', '')}"
        self.env = {**os.environ, **SAM_ENV, "PATH": path}

    def build(self) -> None:
        """`sam build` of a copy of template.yaml for ``arch`` (the layer's wheels for it too)."""
        text = (self.root / "template.yaml").read_text(encoding="utf-8")
        if self.arch == "x86_64":
            text = text.replace("Architectures: [arm64]", "Architectures: [x86_64]")
            text = text.replace("BuildArchitecture: arm64", "BuildArchitecture: x86_64")
        copy = self.work / "template.yaml"
        copy.write_text(text, encoding="utf-8")
        env = {**self.env, "LAYER_ARCH": "aarch64" if self.arch == "arm64" else "x86_64"}
        self._run(
            [self.sam, "build", "-t", str(copy), "--base-dir", str(self.root), "--build-dir",
             str(self.built.parent)],
            log="sam-build.log",
            env=env,
        )  # fmt: skip

    def write_env(self, variables: dict[str, str]) -> None:
        """--env-vars: the same variables for every function (only those a function declares apply)."""
        self.env_file.write_text(json.dumps({"Parameters": variables}, indent=2), encoding="utf-8")

    def invoke(self, function: str, event: Path | dict[str, Any], *, name: str) -> Any:
        """`sam local invoke`: the function's answer (SAM's last line on stdout), or SamFailed."""
        if isinstance(event, dict):
            path = self.work / f"event-{name}.json"
            path.write_text(json.dumps(event), encoding="utf-8")
            event = path
        log = self.logs / f"invoke-{name}.log"
        with log.open("w") as err:
            proc = subprocess.run(  # noqa: S603 - our own SAM CLI
                [self.sam, "local", "invoke", function, "-t", str(self.built), "-e", str(event),
                 "--env-vars", str(self.env_file), "--skip-pull-image"],
                cwd=self.root, env=self.env, stdout=subprocess.PIPE, stderr=err, text=True, timeout=600,
            )  # fmt: skip
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        try:
            answer = json.loads(lines[-1])
        except (IndexError, ValueError):
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise SamFailed(
                f"sam local invoke {function} gave no answer (exit {proc.returncode}): {tail}"
            ) from None
        if isinstance(answer, dict) and "errorType" in answer:
            raise SamFailed(
                f"sam local invoke {function}: {answer['errorType']}: {answer.get('errorMessage')}"
            )
        return answer

    @contextlib.contextmanager
    def serve(self, command: str, port: int, *extra: str) -> Iterator[str]:
        """`sam local start-lambda` / `start-api` on 127.0.0.1:``port`` while the block runs."""
        log = (self.logs / f"{command}.log").open("w")
        proc = subprocess.Popen(  # noqa: S603 - our own SAM CLI
            [self.sam, "local", command, "-t", str(self.built), "--env-vars", str(self.env_file),
             "--skip-pull-image", "--host", "127.0.0.1", "--port", str(port), *extra],
            cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for_port(port, 180, what=f"sam local {command}", alive=lambda: proc.poll() is None)
            yield f"http://127.0.0.1:{port}"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # its own session: SAM and nothing else
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            log.close()

    def version(self) -> str:
        out = subprocess.run(  # noqa: S603 - our own SAM CLI
            [self.sam, "--version"], env=self.env, capture_output=True, text=True, check=True
        )
        match = re.search(r"\d+\.\d+\.\d+", out.stdout)
        return match.group(0) if match else out.stdout.strip()

    def _run(self, args: list[str], *, log: str, env: dict[str, str]) -> None:
        path = self.logs / log
        with path.open("w") as out:
            proc = subprocess.run(args, cwd=self.root, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
        if proc.returncode != 0:
            tail = path.read_text(errors="replace").strip().splitlines()[-5:]
            raise SamFailed(f"{' '.join(args[:2])} failed (exit {proc.returncode}): {tail}")


__all__ = ["Sam", "SamFailed", "free_port"]
