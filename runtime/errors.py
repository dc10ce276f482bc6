"""Every error cellbox raises on purpose.

    CellboxError                 what failed, on what, and what the user can do
    ├── ConfigError              a bad setting, option or command-line value
    ├── InvalidReference         an image reference that breaks the grammar
    ├── RegistryError            talking to a registry failed
    │   ├── AuthError            401/403: credentials missing or refused
    │   ├── ImageNotFound        404 for a repository, tag or digest
    │   ├── RateLimited          429 after the retries ran out
    │   ├── RegistryUnavailable  connection refused, DNS, TLS, 5xx after retries
    │   ├── ManifestError        a manifest we refuse (schema1, bad media type, digest)
    │   ├── PlatformNotFound     no manifest in an index fits the wanted platform
    │   └── BlobError            a blob whose size or digest is not what was promised
    ├── StoreError               the local store (locks, index, disk)
    ├── LayerError               a layer that could not be applied
    │   └── UnsafeLayer          a layer that tried to escape or to exceed a cap
    ├── ContainerError           container lifecycle
    │   ├── ContainerNotFound
    │   ├── ContainerExists      a name already in use
    │   ├── ContainerStateError  the container is not in a state for that operation
    │   └── SandboxError         namespaces, mounts, privileges or exec of a container failed
    ├── CgroupError              creating, limiting or reading a cgroup
    ├── NetworkError             bridge, veth, addresses, NAT, published ports
    ├── BuildError               a Containerfile that does not parse or a step that fails
    └── SyscallError             a system call failed; carries errno and what was being done

Messages are for people: name the thing that failed and, when there is one, the fix.
Code that catches ``OSError`` from the operating system re-raises it as one of these with
``raise X(...) from exc`` so the errno stays in the chain.
"""

from __future__ import annotations

import errno as _errno
import os

__all__ = [
    "AuthError",
    "BlobError",
    "BuildError",
    "CellboxError",
    "CgroupError",
    "ConfigError",
    "ContainerError",
    "ContainerExists",
    "ContainerNotFound",
    "ContainerStateError",
    "ImageNotFound",
    "InvalidReference",
    "LayerError",
    "ManifestError",
    "NetworkError",
    "PlatformNotFound",
    "RateLimited",
    "RegistryError",
    "RegistryUnavailable",
    "SandboxError",
    "StoreError",
    "SyscallError",
    "UnsafeLayer",
]


class CellboxError(Exception):
    """Base of every error cellbox raises on purpose."""


class ConfigError(CellboxError):
    """A bad setting, option or command-line value."""


class InvalidReference(CellboxError):
    """An image reference that does not follow the distribution grammar."""


class RegistryError(CellboxError):
    """Talking to a registry failed."""


class AuthError(RegistryError):
    """The registry wants credentials we do not have, or refused the ones we sent."""


class ImageNotFound(RegistryError):
    """The repository, tag or digest does not exist (or is hidden behind auth)."""


class RateLimited(RegistryError):
    """The registry kept answering 429 after every retry."""


class RegistryUnavailable(RegistryError):
    """The registry could not be reached or kept failing with 5xx."""


class ManifestError(RegistryError):
    """A manifest cellbox refuses: schema1, a contradicting media type, a wrong digest."""


class PlatformNotFound(RegistryError):
    """No manifest in an index matches the platform asked for."""


class BlobError(RegistryError):
    """A blob whose size or digest differs from what its descriptor promised."""


class StoreError(CellboxError):
    """The local content store failed (locks, index, disk)."""


class LayerError(CellboxError):
    """A layer could not be applied."""


class UnsafeLayer(LayerError):
    """A layer entry that tried to escape its root, or a layer over a cap."""


class ContainerError(CellboxError):
    """Container lifecycle failed."""


class ContainerNotFound(ContainerError):
    """No container has that name or id."""


class ContainerExists(ContainerError):
    """The name is already taken by another container."""


class ContainerStateError(ContainerError):
    """The container is not in a state that allows the operation."""


class SandboxError(ContainerError):
    """Setting up a container's sandbox, or starting its process, failed.

    ``exit_code`` is what Docker would report: 127 when the command was not found, 126
    when it could not be executed, 125 when the runtime itself failed.
    """

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class CgroupError(CellboxError):
    """Creating, limiting or reading a cgroup failed."""


class NetworkError(CellboxError):
    """Setting up or tearing down container networking failed."""


class BuildError(CellboxError):
    """A Containerfile that does not parse, or a build step that failed."""


class SyscallError(CellboxError, OSError):
    """A system call failed. ``errno`` is kept; the message says what was being done."""

    def __init__(self, err: int, what: str) -> None:
        name = _errno.errorcode.get(err, str(err))
        OSError.__init__(self, err, f"{what}: {os.strerror(err)} ({name})")
        self.what = what

    def __str__(self) -> str:
        return str(self.strerror)
