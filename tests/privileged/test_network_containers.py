"""Networking seen from inside real containers (busybox), started with the ``cellbox`` CLI."""

from __future__ import annotations

from pathlib import Path

from cellbox.runtime import nat, network
from cellbox.runtime.container import Container
from cellbox.runtime.settings import Settings

from tests.support.containers import cellbox, cellbox_env, container_images, wait_for

__all__ = ["cellbox_env", "container_images"]  # fixtures, imported to be found by pytest

SERVE = "mkdir /www && echo from-$(hostname) > /www/index.html && httpd -f -p 8080 -h /www"


def _ip(name: str) -> str:
    address: str = Container.load(name).inspect()["NetworkSettings"]["IPAddress"]
    return address


def test_containers_on_the_bridge_and_one_without_network(cellbox_env: Settings) -> None:
    settings = cellbox_env
    try:
        for name in ("web1", "web2"):
            cellbox(
                "run",
                "-d",
                "--name",
                name,
                "--network",
                "bridge",
                "busybox",
                "sh",
                "-c",
                SERVE,
                check=True,
            )
        web1, web2 = _ip("web1"), _ip("web2")
        assert web1 and web2 and web1 != web2

        def fetch(source: str, target: str) -> str:
            # nc, not wget: the static busybox's wget crashes in getaddrinfo (glibc NSS)
            argv = ["sh", "-c", f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {target} 8080"]
            done = (
                cellbox("exec", source, *argv)
                if source
                else cellbox("run", "--rm", "--network", "none", "busybox", *argv)
            )
            return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr

        short1 = Container.load("web1").short_id
        assert wait_for(lambda: fetch("web2", web1) == f"from-{short1}", timeout=10)
        inside = cellbox("exec", "web1", "ip", "-o", "-4", "addr", check=True).stdout
        assert f"inet {web1}/" in inside and "lo" in inside

        links = cellbox(
            "run", "--rm", "--network", "none", "busybox", "ip", "-o", "link", check=True
        ).stdout.splitlines()
        assert len(links) == 1 and "lo:" in links[0] and "UP" in links[0]
        assert "Network is unreachable" in fetch("", web1)

        veths = [network.veth_name(Container.load(n).id) for n in ("web1", "web2")]
        cellbox("rm", "-f", "web1", "web2", check=True)
        assert not any(Path(f"/sys/class/net/{veth}").exists() for veth in veths)
    finally:
        removed = network.prune(set(), settings)
    assert f"bridge {settings.bridge}" in removed
    assert not Path(f"/sys/class/net/{settings.bridge}").exists()
    assert not nat.table_exists(settings.bridge)
