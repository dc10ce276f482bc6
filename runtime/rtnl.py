"""Links, addresses and routes over rtnetlink with pyroute2: the bridge and the veth pairs.

pyroute2 is imported here only, and lazily: importing it costs ≈ 200 ms (its
package ``__init__`` loads every family it supports, whichever submodule is asked for), so
``--network none`` and ``host`` never pay it. :func:`preload` lets a caller start that
import in a thread while something else (the container's init) is starting.

Two rules of pyroute2 0.9 shape this module:

* A sync ``IPRoute`` runs its own asyncio loop; constructed in a thread whose loop is
  running (the Jupyter kernel's main thread) it fails with "event loop is already running".
  :func:`call_off_loop` runs such work in a fresh thread instead.
* A netlink socket talks to the network namespace it was *created* in. The container side
  is configured from a short-lived thread that enters the container's netns with setns(2)
  — which moves only that thread — opens its socket there, does the work and ends, so no
  thread of the caller is ever left in a container's namespace (forking a helper, as
  ``IPRoute(netns=...)`` does, costs ≈ 10 ms; the thread ≈ 1 ms).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import NetworkError

__all__ = [
    "Host",
    "call_off_loop",
    "configure_container",
    "preload",
    "write_sysctl",
]

T = TypeVar("T")

_preload_thread: threading.Thread | None = None
_preload_lock = threading.Lock()


def preload() -> None:
    """Start importing pyroute2 in a background thread (idempotent; never raises)."""
    global _preload_thread
    from . import sitepath

    sitepath.ensure()  # here, not in the thread: it sets up sys.path for the import
    with _preload_lock:
        if _preload_thread is None and "pyroute2.iproute.linux" not in sys.modules:
            _preload_thread = threading.Thread(
                target=_import_quietly, name="cellbox-pyroute2-import", daemon=True
            )
            _preload_thread.start()


def _import_quietly() -> None:
    with contextlib.suppress(ImportError):  # _iproute() reports it when it matters
        import pyroute2.iproute.linux  # noqa: F401


def _iproute() -> Any:
    from . import sitepath

    sitepath.ensure()
    try:
        from pyroute2.iproute.linux import IPRoute
    except ImportError as exc:
        raise NetworkError(
            f"pyroute2 is needed for --network bridge but cannot be imported: {exc}"
        ) from exc
    return IPRoute


def _netlink_error() -> type[Exception]:
    from . import sitepath

    sitepath.ensure()
    from pyroute2.netlink.exceptions import NetlinkError

    return NetlinkError  # type: ignore[no-any-return]


def _loop_running() -> bool:
    """Whether this thread runs an asyncio loop — without importing asyncio.

    Asks ``asyncio.events`` only if it is there, and tolerates finding it half imported:
    :func:`preload` may be importing pyroute2, and with it asyncio, in another thread
    right now ("partially initialized module 'asyncio'"). That is safe to read as "no
    loop": a thread can only run a loop once asyncio has been imported completely, so
    while the first import is still under way no thread runs one.
    """
    events = sys.modules.get("asyncio.events")
    get_running_loop = getattr(events, "_get_running_loop", None)
    if get_running_loop is None:
        return False
    try:
        return get_running_loop() is not None
    except AttributeError:  # its thread-local not created yet: mid-import, as above
        return False


def _in_thread(fn: Callable[[], T], name: str) -> T:
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # handed to the caller's thread
            error.append(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def call_off_loop(fn: Callable[[], T]) -> T:
    """Run ``fn`` here, or in a fresh thread when this thread runs an asyncio loop."""
    if _loop_running():
        return _in_thread(fn, "cellbox-netlink")
    return fn()


def write_sysctl(path: str, value: str) -> None:
    """Write ``value`` to ``/proc/sys/<path>`` unless it is already there."""
    full = f"/proc/sys/{path}"
    try:
        with open(full) as f:
            if f.read().strip() == value:
                return
        with open(full, "w") as f:
            f.write(value)
    except OSError as exc:
        raise NetworkError(f"cannot set {path.replace('/', '.')} to {value}: {exc}") from exc


def _errno(exc: Exception) -> int:
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else 0


class Host:
    """An rtnetlink connection in the host's network namespace (a context manager)."""

    def __init__(self) -> None:
        iproute = _iproute()
        self._netlink_error = _netlink_error()
        try:
            self._ipr = iproute()
        except (OSError, self._netlink_error) as exc:
            raise NetworkError(f"cannot open an rtnetlink socket: {exc}") from exc

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._ipr.close()

    def link(self, name: str) -> dict[str, Any] | None:
        """``{"index", "kind", "master", "up"}`` of link ``name``, or None if absent."""
        try:
            (msg,) = self._ipr.link("get", ifname=name)
        except self._netlink_error as exc:
            if _errno(exc) == 19:  # ENODEV
                return None
            raise NetworkError(f"cannot look up link {name}: {exc}") from exc
        info = msg.get_attr("IFLA_LINKINFO")
        return {
            "index": msg["index"],
            "kind": info.get_attr("IFLA_INFO_KIND") if info is not None else None,
            "master": msg.get_attr("IFLA_MASTER"),
            "up": bool(msg["flags"] & 1),
        }

    def addresses(self, index: int) -> list[ipaddress.IPv4Interface]:
        """The IPv4 addresses of link ``index``."""
        found = []
        for msg in self._ipr.addr("dump", index=index, family=2):
            found.append(
                ipaddress.IPv4Interface(f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}")
            )
        return found

    def conflicting_routes(self, network: ipaddress.IPv4Network, bridge: str) -> list[str]:
        """Routes of other links that overlap ``network`` (a bridge there would shadow them)."""
        own = self.link(bridge)
        own_index = own["index"] if own else None
        clashes = []
        for msg in self._ipr.route("dump", family=2, table=254):
            dst, length = msg.get_attr("RTA_DST"), msg["dst_len"]
            if dst is None or length == 0 or msg.get_attr("RTA_OIF") == own_index:
                continue
            route = ipaddress.IPv4Network(f"{dst}/{length}", strict=False)
            if route.overlaps(network):
                clashes.append(str(route))
        return clashes

    def create_bridge(self, name: str, gateway: ipaddress.IPv4Interface) -> int:
        """Create bridge ``name`` with address ``gateway``, up; returns its index."""
        try:
            self._ipr.link("add", ifname=name, kind="bridge")
            (msg,) = self._ipr.link("get", ifname=name)
            index: int = msg["index"]
            self._ipr.addr(
                "add", index=index, address=str(gateway.ip), prefixlen=gateway.network.prefixlen
            )
            self._ipr.link("set", index=index, state="up")
        except self._netlink_error as exc:
            raise NetworkError(f"cannot create bridge {name} ({gateway}): {exc}") from exc
        return index

    def set_address(self, index: int, name: str, gateway: ipaddress.IPv4Interface) -> None:
        """Make ``gateway`` the only IPv4 address of the bridge and bring it up."""
        try:
            for old in self.addresses(index):
                if old != gateway:
                    self._ipr.addr(
                        "del", index=index, address=str(old.ip), prefixlen=old.network.prefixlen
                    )
            if gateway not in self.addresses(index):
                self._ipr.addr(
                    "add",
                    index=index,
                    address=str(gateway.ip),
                    prefixlen=gateway.network.prefixlen,
                )
            self._ipr.link("set", index=index, state="up")
        except self._netlink_error as exc:
            raise NetworkError(f"cannot give bridge {name} the address {gateway}: {exc}") from exc

    def add_veth(self, name: str, bridge_index: int, pid: int, alias: str) -> None:
        """A veth pair: ``name`` on the host, enslaved to the bridge, up, with ``alias``;
        ``eth0`` made directly in the network namespace of ``pid`` (never on the host)."""
        try:
            self._ipr.link(
                "add",
                ifname=name,
                kind="veth",
                peer={"ifname": "eth0", "net_ns_pid": pid},
                master=bridge_index,
                state="up",
            )
        except self._netlink_error as exc:
            hint = ""
            if _errno(exc) == 17:  # EEXIST
                hint = "; a link of that name exists: `cellbox prune` removes stale ones"
            elif _errno(exc) == 3:  # ESRCH
                hint = "; the container's init is gone"
            raise NetworkError(
                f"cannot create veth {name} into the netns of pid {pid}: {exc}{hint}"
            ) from exc
        try:
            # the kernel ignores an alias in the creating request: set it afterwards
            self._ipr.link("set", ifname=name, ifalias=alias)
        except self._netlink_error as exc:
            self.delete_link(name)
            raise NetworkError(f"cannot label veth {name}: {exc}") from exc

    def delete_link(self, name: str) -> bool:
        """Delete link ``name``; False when it does not exist (any more)."""
        try:
            self._ipr.link("del", ifname=name)
        except self._netlink_error as exc:
            if _errno(exc) == 19:  # ENODEV: gone, e.g. with its netns
                return False
            raise NetworkError(f"cannot delete link {name}: {exc}") from exc
        return True

    def ports(self, bridge_index: int) -> dict[str, str]:
        """The links enslaved to the bridge: name -> alias ("" when none)."""
        return {
            msg.get_attr("IFLA_IFNAME"): msg.get_attr("IFLA_IFALIAS") or ""
            for msg in self._ipr.link("dump", master=bridge_index)
            if msg.get_attr("IFLA_MASTER") == bridge_index
        }


def configure_container(
    pid: int, address: ipaddress.IPv4Interface, gateway: ipaddress.IPv4Address
) -> None:
    """Inside the netns of ``pid``: ``lo`` up, ``eth0`` with ``address`` up, default route.

    Runs in a throwaway thread that setns(2)s into the container's netns (see the module
    docstring), so the calling thread's namespace never changes.
    """
    path = f"/proc/{pid}/ns/net"
    from . import sitepath

    sitepath.ensure()  # in this thread: the worker only imports

    def work() -> None:
        from pyroute2.netns import setns

        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise NetworkError(f"cannot open {path}: {exc}; is the container running?") from exc
        try:
            setns(fd, flags=0)
        except OSError as exc:
            raise NetworkError(f"cannot enter the network namespace {path}: {exc}") from exc
        finally:
            os.close(fd)
        netlink_error = _netlink_error()
        ipr = _iproute()()
        try:
            (eth0,) = ipr.link("get", ifname="eth0")
            index = eth0["index"]
            ipr.link("set", index=1, state="up")  # lo is always index 1 in a new netns
            ipr.addr(
                "add", index=index, address=str(address.ip), prefixlen=address.network.prefixlen
            )
            ipr.link("set", index=index, state="up")
            ipr.route("add", dst="0.0.0.0/0", gateway=str(gateway))
        except netlink_error as exc:
            raise NetworkError(
                f"cannot configure eth0 ({address} via {gateway}) in the netns of pid {pid}: {exc}"
            ) from exc
        finally:
            ipr.close()

    _in_thread(work, "cellbox-netns")
