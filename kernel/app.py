"""The kernel's application: ipykernel's ``IPKernelApp`` with two fixes of its own.

* **No warning that does not apply.** ipykernel 7 logs "Kernel is running over TCP without
  encryption ... susceptible to eavesdropping" for every kernel on a TCP transport without
  CurveZMQ keys. Jupyter's server starts kernels on 127.0.0.1: that traffic never leaves
  the machine, reading it off the loopback takes CAP_NET_RAW (root, who can read the
  kernel's memory anyway), and a local user who connects cannot send a message without the
  session key from the connection file (mode 0600), which signs every message. So on a
  loopback address the warning is dropped -- only that one message; bound to any other
  address it stays. The kernelspec declares ``"supported_encryption": ["curve"]``: a
  server configured with ``KernelManager.transport_encryption = "auto"`` provisions keys
  and the kernel speaks CurveZMQ (ipykernel does it).
* **No 10 s exit.** After a ``shutdown_request`` ipykernel stops the main loop from the
  control thread, which then still flushes stdout and stderr through the iopub thread.
  The main thread meanwhile returns from ``start()`` and exits, and the first exit hook
  (``IOPubThread.stop``) stops the iopub thread: a flush caught in between waits out its
  10 s timeout (``OutStream.flush_timeout``), and ``close()`` waits for the control thread.
  That happened to about one shutdown in seven here. So ``start()`` returns only once the
  kernel has finished handling the shutdown (at most :data:`SHUTDOWN_FLUSH_WAIT` later).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from ipykernel.kernelapp import IPKernelApp

__all__ = ["SHUTDOWN_FLUSH_WAIT", "CellboxKernelApp", "is_loopback"]

SHUTDOWN_FLUSH_WAIT = 2.0  # seconds start() waits for the shutdown_request's last flush
_TCP_WARNING = "Kernel is running over TCP without encryption"


def is_loopback(ip: str) -> bool:
    """Whether the kernel's sockets are bound to a loopback address only."""
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


class _DropLoopbackTcpWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_TCP_WARNING)


class CellboxKernelApp(IPKernelApp):
    """``python -m cellbox.kernel`` (see the module docstring)."""

    def init_sockets(self) -> None:
        quiet = (self.transport == "tcp" and self.curve_secretkey is None
                 and is_loopback(str(self.ip)))
        log: logging.Logger = self.log
        drop = _DropLoopbackTcpWarning()
        if quiet:
            log.addFilter(drop)
        try:
            super().init_sockets()  # type: ignore[no-untyped-call]
        finally:
            log.removeFilter(drop)

    def start(self) -> None:
        super().start()  # type: ignore[no-untyped-call]
        kernel: Any = self.kernel
        handled = getattr(kernel, "shutdown_handled", None)
        if getattr(kernel, "shutting_down", False) and handled is not None:
            handled.wait(SHUTDOWN_FLUSH_WAIT)
