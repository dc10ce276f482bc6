"""The generated /etc/hostname, /etc/hosts and /etc/resolv.conf of a container.

Like Docker, a container does not see the image's copies of these files: the runtime writes
them into the container's state dir and the sandbox bind-mounts them. Content rules:

* ``/etc/hostname``: the container's hostname (by default the first 12 hex of its id).
* ``/etc/hosts``: localhost and the usual IPv6 names, then the container's address (bridge
  mode) or 127.0.1.1 (no address) with its hostname, so ``hostname -f`` and tools that look
  themselves up work; with ``--network host`` the host's own /etc/hosts.
* ``/etc/resolv.conf``: the host's, minus nameservers on loopback (127.0.0.0/8 and ::1:
  they would point at the container's own lo in its netns). When nothing is left, Google's
  public resolvers, as Docker does. systemd-resolved's stub (127.0.0.53) is looked through
  to /run/systemd/resolve/resolv.conf when that exists. With ``--network host`` the host's
  file as is.

The functions that build content are pure; :func:`etc_files` reads the host's files.
Every container start runs this: paths are strings, and ipaddress (≈ 5 ms to import) is
only needed for a nameserver that is not a plain dotted quad.
"""

from __future__ import annotations

import os

from .paths import clean

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .paths import StrPath

__all__ = [
    "DEFAULT_NAMESERVERS",
    "etc_files",
    "filter_resolv_conf",
    "hostname_file",
    "hosts_file",
]

DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4")

_BASE_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
_SYSTEMD_RESOLVED = "/run/systemd/resolve/resolv.conf"


def hostname_file(hostname: str) -> str:
    """Content of /etc/hostname."""
    return f"{hostname}\n"


def hosts_file(hostname: str, ip: str | None, extra: list[tuple[str, str]] | None = None) -> str:
    """Content of /etc/hosts for a container with its own network namespace."""
    lines = [_BASE_HOSTS, f"{ip or '127.0.1.1'}\t{hostname}\n"]
    lines += [f"{addr}\t{name}\n" for addr, name in extra or []]
    return "".join(lines)


def _octet(text: str) -> bool:
    """``text`` is an IPv4 octet as ipaddress accepts it (0-255, no leading zero)."""
    return (text.isascii() and text.isdigit() and len(text) <= 3
            and (text == "0" or text[0] != "0") and int(text) <= 255)


def _is_loopback(address: str) -> bool:
    host = address.split("%", 1)[0]
    octets = host.split(".")
    if len(octets) == 4 and all(_octet(octet) for octet in octets):
        return octets[0] == "127"  # 127.0.0.0/8, exactly as ipaddress decides
    if host == "::1":
        return True
    import ipaddress  # anything else: ipaddress's own rules

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def filter_resolv_conf(text: str) -> tuple[str, bool]:
    """The host's resolv.conf without loopback nameservers.

    Returns the new content and whether any nameserver is left; when none is, Docker's
    defaults are appended.
    """
    out: list[str] = []
    kept = 0
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "nameserver" and len(fields) > 1:
            if _is_loopback(fields[1]):
                continue
            kept += 1
        out.append(line)
    if kept == 0:
        out += [f"nameserver {ns}" for ns in DEFAULT_NAMESERVERS]
    return "\n".join(out).strip("\n") + "\n", kept > 0


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def etc_files(
    hostname: str,
    network: str,
    ip: str | None = None,
    *,
    host_etc: StrPath = "/etc",
) -> dict[str, str]:
    """The three files, keyed by their path inside the container."""
    etc = os.fspath(host_etc)
    if network == "host":
        hosts = _read(os.path.join(etc, "hosts")) or hosts_file(hostname, None)
        resolv = _read(os.path.join(etc, "resolv.conf"))
        if not resolv.strip():
            resolv = "".join(f"nameserver {ns}\n" for ns in DEFAULT_NAMESERVERS)
    else:
        hosts = hosts_file(hostname, ip)
        host_resolv = _read(os.path.join(etc, "resolv.conf"))
        if "127.0.0.53" in host_resolv and clean(etc) == "/etc":
            host_resolv = _read(_SYSTEMD_RESOLVED) or host_resolv
        resolv, _ = filter_resolv_conf(host_resolv)
    return {
        "/etc/hostname": hostname_file(hostname),
        "/etc/hosts": hosts,
        "/etc/resolv.conf": resolv,
    }
