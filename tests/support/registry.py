"""A real registry for the tests and the demo: Debian's ``docker-registry`` on 127.0.0.1.

``RegistryServer`` starts one on a free port with its own storage directory, optionally
behind htpasswd basic auth, and stops it again (also when the test failed). ``push`` puts
an OCI layout into it with skopeo, the way a user's image would get there.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx

__all__ = ["RegistryServer", "free_port", "skopeo_push"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def skopeo_push(layout: Path, tag: str, dest: str, *, creds: str | None = None) -> None:
    """Copy ``layout:tag`` (an OCI layout) to ``dest`` (``host:port/name:tag``) with skopeo."""
    cmd = [
        "skopeo", "copy", "--quiet", "--dest-tls-verify=false",
        f"oci:{layout}:{tag}", f"docker://{dest}",
    ]
    if creds:
        cmd[2:2] = ["--dest-creds", creds]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)


class RegistryServer:
    """A running ``docker-registry``. Use as a context manager, or ``start``/``stop``."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        htpasswd: dict[str, str] | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        self.htpasswd = htpasswd
        self.extra_config = extra_config or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def _config(self) -> str:
        lines = [
            "version: 0.1",
            "log: {level: warn, accesslog: {disabled: true}}",
            f"storage: {{filesystem: {{rootdirectory: {self.directory / 'data'}}}, "
            "delete: {enabled: true}}",
            f"http: {{addr: {self.host}}}",
        ]
        if self.htpasswd is not None:
            path = self.directory / "htpasswd"
            path.write_text("")
            for user, password in self.htpasswd.items():
                subprocess.run(
                    ["htpasswd", "-bB", str(path), user, password],
                    check=True, capture_output=True,
                )
            lines.append(f"auth: {{htpasswd: {{realm: cellbox-test, path: {path}}}}}")
        for key, value in self.extra_config.items():
            lines.append(f"{key}: {value}")
        return "\n".join(lines) + "\n"

    def start(self) -> RegistryServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "config.yml"
        config.write_text(self._config())
        log = open(self.directory / "registry.log", "ab")  # noqa: SIM115 - owned by Popen
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"docker-registry exited: {(self.directory / 'registry.log').read_text()}"
                )
            with suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/v2/", timeout=1).status_code in (200, 401):
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry on {self.host} did not answer within 20 s")

    def stop(self) -> None:
        if self.process is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def push(self, layout: Path, tag: str, name: str, *, creds: str | None = None) -> str:
        """Push ``layout:tag`` as ``name`` (``repo:tag``); return ``host/name``."""
        dest = f"{self.host}/{name}"
        skopeo_push(layout, tag, dest, creds=creds)
        return dest

    def wipe(self) -> None:
        shutil.rmtree(self.directory / "data", ignore_errors=True)

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
