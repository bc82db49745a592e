"""Host networking for SAM CLI's Lambda containers (loaded into the SAM CLI venv by ``setup.sh``).

With ``LONGFORM_SAM_HOST_NETWORK=1`` the containers SAM CLI starts for ``sam local invoke``,
``start-api`` and ``start-lambda`` share the host's network namespace, and the runtime interface
emulator (and its runtime API) listen on 127.0.0.1 only, on the port SAM CLI already chose. Stock
SAM CLI (1.170.0, the version ``setup.sh`` pins) always publishes the container's port 8080 from a
bridge network, which a ``dockerd --bridge=none`` (no iptables, loopback only) does not have: SAM
then times out "while attempting to establish a connection to the container". Inert without the
variable. ``samlocal/check_pin.py`` checks that the pinned SAM CLI still creates its containers the
way this patch expects (the RIE entrypoint and a published port 8080).
"""

import os

SAM_CLI_VERSION = "1.170.0"  # the version this patch was written against (setup.sh pins it)
RIE_ENTRYPOINT = "/var/rapid/aws-lambda-rie"

if os.environ.get("LONGFORM_SAM_HOST_NETWORK") == "1":
    import socket

    import docker.models.containers as _containers

    _create = _containers.ContainerCollection.create

    def _free_loopback_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def create(self, image, command=None, **kwargs):  # type: ignore[no-untyped-def]
        entrypoint = kwargs.get("entrypoint")
        ports = kwargs.get("ports") or {}
        if isinstance(entrypoint, list) and entrypoint[:1] == [RIE_ENTRYPOINT] and "8080" in ports:
            _interface, host_port = ports["8080"]
            kwargs.pop("ports")
            kwargs["network_mode"] = "host"
            kwargs["entrypoint"] = [
                *entrypoint,
                "--runtime-interface-emulator-address",
                f"127.0.0.1:{host_port}",
                "--runtime-api-address",
                f"127.0.0.1:{_free_loopback_port()}",
            ]
        return _create(self, image, command, **kwargs)

    _containers.ContainerCollection.create = create
