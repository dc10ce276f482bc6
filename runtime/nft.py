"""Run nft commands: through libnftables when it is installed, else through the ``nft`` tool.

Both take the same command text and apply a batch as one transaction. libnftables (the
library the ``nft`` command is built on, in Debian's ``libnftables1``, a dependency of
``nftables``) is called through ctypes because it is ≈ 50x cheaper than starting the
command: ≈ 0.3 ms against ≈ 4-16 ms per change, which is most of a ``-p`` attach or
detach (bench/network.py). The ctypes use is confined to :class:`_Library`; the command
is the fallback and the reference the tests compare against.

libnftables opens its netlink socket per command, in the network namespace of the
calling thread (always the host's here), and closes it before returning. That socket is
not close-on-exec, so for that instant a concurrent fork+exec that does not close its fds
could inherit it; subprocess and pexpect close every fd above 2 in the child, and the
kernel checks CAP_NET_ADMIN of both opener and sender, so it gives nothing away.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import threading
from dataclasses import dataclass

from .errors import NetworkError

__all__ = ["Result", "run"]

_OUTPUT_JSON = 1 << 4  # NFT_CTX_OUTPUT_JSON


@dataclass(frozen=True)
class Result:
    ok: bool
    output: str
    error: str


class _Library:
    """libnftables.so.1, one context per call (a context is not thread-safe; this is)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_free.restype = None
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        self._lib = lib
        self._lock = threading.Lock()  # the parser keeps some global state

    def run(self, commands: str, json_output: bool) -> Result:
        lib = self._lib
        with self._lock:
            ctx = lib.nft_ctx_new(0)
            if not ctx:
                raise NetworkError("libnftables could not make a context (out of memory?)")
            try:
                lib.nft_ctx_buffer_output(ctx)
                lib.nft_ctx_buffer_error(ctx)
                if json_output:
                    lib.nft_ctx_output_set_flags(ctx, _OUTPUT_JSON)
                status = lib.nft_run_cmd_from_buffer(ctx, commands.encode())
                output = lib.nft_ctx_get_output_buffer(ctx) or b""
                error = lib.nft_ctx_get_error_buffer(ctx) or b""
            finally:
                lib.nft_ctx_free(ctx)
        return Result(status == 0, output.decode(errors="replace"), error.decode(errors="replace"))


_library: _Library | None = None
_library_tried = False
_load_lock = threading.Lock()


def library() -> _Library | None:
    """libnftables, loaded once; None when it is not installed."""
    global _library, _library_tried
    with _load_lock:
        if not _library_tried:
            _library_tried = True
            try:
                _library = _Library(ctypes.CDLL("libnftables.so.1"))
            except (OSError, AttributeError):
                _library = None
    return _library


def run_command(commands: str, json_output: bool = False) -> Result:
    """The same as :func:`run`, through the ``nft`` program."""
    # root's PATH has /usr/sbin; a kernel started from a desktop session may not
    path = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")
    if path is None:
        raise NetworkError(
            "nftables is missing: install it (apt-get install nftables) for --network bridge"
        )
    # `nft -j -f -` prints nothing for a list command (nftables 1.0.6): JSON output wants
    # the command as arguments, which is fine for the one-line listings asked for here
    argv = [path, "-j", *commands.split()] if json_output else [path, "-f", "-"]
    try:
        done = subprocess.run(argv, input=commands, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise NetworkError(f"cannot run {path}: {exc}") from exc
    return Result(done.returncode == 0, done.stdout, done.stderr)


def run(commands: str, json_output: bool = False) -> Result:
    """Apply ``commands`` (nft syntax, one per line) as one transaction; never raises for a
    refused batch — the result says. ``json_output``: list commands print JSON."""
    lib = library()
    if lib is not None:
        return lib.run(commands, json_output)
    return run_command(commands, json_output)
