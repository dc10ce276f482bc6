"""A real JupyterHub on 127.0.0.1 for the tests: the hub, its configurable-http-proxy (the
Node one JupyterHub runs by default, installed by scripts/setup.sh into the build
directory) and single-user servers spawned as the hub's own user (root).

:class:`Hub` writes a config into its directory (database, cookie secret, pid files, the
users' homes and TMPDIR all in there), starts ``jupyterhub`` in a process group of its
own, talks to the hub's REST API through the proxy's public URL with a service token of
the ``admin`` role, and stops everything again: the user servers through the API, then
the hub (SIGTERM, SIGKILL after a timeout), then whatever it started that is still alive
(:meth:`Hub.stop` returns those, so that a test can fail on them as the leak they are).

Every process of a hub carries ``CELLBOX_HUB_TEST=<directory>`` in its environment (the
hub, the proxy, the single-user servers and their kernels), which is how :meth:`stop`
finds the ones that outlived the hub.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from .registry import free_port

__all__ = ["CHP", "Hub", "listening", "marked_processes"]

SRC = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("BUILD", SRC / ".build"))
# Where scripts/setup.sh installs configurable-http-proxy (npm install --prefix).
CHP = BUILD / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
VENV_BIN = Path(sys.executable).parent
MARKER = "CELLBOX_HUB_TEST"
SERVICE = "cellbox-test"


def listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def marked_processes(directory: Path) -> list[int]:
    """Pids of the live processes whose environment names the hub of ``directory``."""
    mark = f"{MARKER}={directory}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and mark in environ.split(b"\0"):
            found.append(int(entry))
    return found


class Hub:
    """One JupyterHub with its proxy, configured and kept under ``directory``.

    ``environment`` is given to every single-user server (and so to its kernels).
    """

    def __init__(self, directory: Path, environment: dict[str, str],
                 password: str = "cellbox-hub-test") -> None:
        self.directory = directory
        self.environment = environment
        self.password = password
        self.hub_port, self.api_port, self.public_port, self.server_port = (
            free_port() for _ in range(4)
        )
        self.token = secrets.token_hex(32)  # the test service's, of the admin role
        self.process: subprocess.Popen[bytes] | None = None
        self.users: list[str] = []
        self.log = directory / "jupyterhub.log"

    @property
    def url(self) -> str:
        """The proxy's public URL: what a browser of the class would open."""
        return f"http://127.0.0.1:{self.public_port}"

    @property
    def ports(self) -> tuple[int, int, int, int]:
        return self.hub_port, self.api_port, self.public_port, self.server_port

    # -- configuration ---------------------------------------------------------------

    def config(self) -> str:
        """jupyterhub_config.py: everything on 127.0.0.1, every state file in directory."""
        d = self.directory
        settings: dict[str, Any] = {
            "JupyterHub.bind_url": self.url,
            "JupyterHub.hub_bind_url": f"http://127.0.0.1:{self.hub_port}",
            "JupyterHub.db_url": f"sqlite:///{d / 'jupyterhub.sqlite'}",
            "JupyterHub.cookie_secret_file": str(d / "jupyterhub_cookie_secret"),
            "JupyterHub.pid_file": str(d / "jupyterhub.pid"),
            "JupyterHub.authenticator_class": "dummy",
            "DummyAuthenticator.password": self.password,
            "Authenticator.allow_all": True,
            "JupyterHub.spawner_class": "simple",
            "SimpleLocalProcessSpawner.home_dir_template": str(d / "home" / "{username}"),
            "Spawner.cmd": [str(VENV_BIN / "jupyterhub-singleuser")],
            # root runs the tests; the extension manager would look things up on PyPI
            "Spawner.args": ["--allow-root", "--LabApp.extension_manager=readonly"],
            "Spawner.ip": "127.0.0.1",
            "Spawner.port": self.server_port,
            "Spawner.environment": self.environment,
            "Spawner.start_timeout": 90,
            "Spawner.http_timeout": 90,
            "ConfigurableHTTPProxy.command": [str(CHP)],
            "ConfigurableHTTPProxy.api_url": f"http://127.0.0.1:{self.api_port}",
            "ConfigurableHTTPProxy.pid_file": str(d / "proxy.pid"),
            "JupyterHub.services": [{"name": SERVICE, "api_token": self.token}],
            "JupyterHub.load_roles": [{"name": "admin", "services": [SERVICE]}],
        }
        lines = ["c = get_config()  # noqa"]
        lines += [f"c.{name} = {value!r}" for name, value in settings.items()]
        return "\n".join(lines) + "\n"

    # -- life ------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        """Start the hub (which starts its proxy) and wait until its API answers."""
        for name in ("home", "tmp"):
            (self.directory / name).mkdir(exist_ok=True)
        config = self.directory / "jupyterhub_config.py"
        config.write_text(self.config())
        env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "TMPDIR": str(self.directory / "tmp"),
            MARKER: str(self.directory),
        }
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "jupyterhub"), "-f", str(config)],
                cwd=self.directory, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"jupyterhub exited {self.process.returncode}\n"
                                     + self.log_tail())
            with contextlib.suppress(httpx.HTTPError):
                if self.api("GET", "/").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"jupyterhub not up in {timeout} s\n" + self.log_tail())
            time.sleep(0.2)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "jupyterhub's log (last lines):\n" + "\n".join(text.splitlines()[-lines:])

    # -- REST API --------------------------------------------------------------------

    def api(self, method: str, path: str, *, token: str | None = None,
            json: Any = None, timeout: float = 30) -> httpx.Response:
        """A request to the hub's REST API, through the proxy (the service token unless
        ``token`` is given)."""
        return httpx.request(
            method, f"{self.url}/hub/api{path}", json=json, timeout=timeout,
            headers={"Authorization": f"token {token or self.token}"},
        )

    def _ok(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise AssertionError(
                f"{response.request.method} {response.request.url} -> {response.status_code}: "
                f"{response.text}\n{self.log_tail()}"
            )
        return response.json() if response.content else None

    def add_user(self, name: str) -> None:
        self._ok(self.api("POST", f"/users/{name}"))
        self.users.append(name)

    def user_token(self, name: str) -> str:
        """A new API token of ``name``, with the user's own permissions."""
        reply = self._ok(self.api("POST", f"/users/{name}/tokens",
                                  json={"note": "cellbox hub test", "expires_in": 3600}))
        return str(reply["token"])

    def start_server(self, name: str, timeout: float = 120) -> None:
        """Spawn ``name``'s single-user server and wait until the hub calls it ready."""
        self._ok(self.api("POST", f"/users/{name}/server"))
        deadline = time.monotonic() + timeout
        while True:
            user = self._ok(self.api("GET", f"/users/{name}"))
            server = user.get("servers", {}).get("")
            if server and server.get("ready"):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}'s server not ready in {timeout} s: {user}\n"
                                     + self.log_tail())
            time.sleep(0.3)

    def stop_server(self, name: str, timeout: float = 60) -> None:
        """Stop ``name``'s server through the API (the server shuts its kernels down)."""
        response = self.api("DELETE", f"/users/{name}/server", timeout=timeout)
        if response.status_code not in (202, 204, 400):  # 400: not running
            self._ok(response)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            user = self._ok(self.api("GET", f"/users/{name}"))
            if not user.get("servers"):
                return
            time.sleep(0.3)
        raise AssertionError(f"{name}'s server still there after {timeout} s\n"
                             + self.log_tail())

    def stop(self, timeout: float = 30) -> list[str]:
        """Stop the users' servers, the hub and its proxy. Returns what had to be killed
        after that (processes, listening ports): a leak to report, now gone."""
        errors: list[str] = []
        if self.process is not None and self.process.poll() is None:
            for name in self.users:
                try:
                    self.stop_server(name)
                except (AssertionError, httpx.HTTPError) as e:
                    errors.append(f"stopping {name}'s server: {e}")
            # The hub stops its proxy (and any server still running) on SIGTERM.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                errors.append(f"jupyterhub ignored SIGTERM for {timeout} s")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        # Anything of ours that outlived the hub (a proxy, a server, a kernel) is a leak.
        left = marked_processes(self.directory)
        if left:
            errors.append("left running: " + ", ".join(_describe(pid) for pid in left))
            _kill(left, timeout=10)
        for port in self.ports:
            if listening(port):
                errors.append(f"port {port} still listening")
        return errors


def _describe(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        cmdline = "?"
    return f"{pid} {cmdline[:120]}"


def _kill(pids: list[int], timeout: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(Path(f"/proc/{pid}").exists() for pid in pids):
                return
            time.sleep(0.1)
