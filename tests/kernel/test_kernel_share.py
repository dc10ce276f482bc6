"""Build an image in a notebook, share it through a registry, and run it again by its name.

The story of Docker's introduction (seed text): "if your account is gocloudcoder and you
publish an image called hello-world, others run ``docker run gocloudcoder/hello-world``".
Here the registry is the session's real docker-registry, reached as ``localhost:PORT``
(plain http is allowed for loopback names, not only for 127.0.0.1), and everything goes
through the kernel as a notebook would: ``%%containerfile``, ``%tag``, ``%push``,
``%rmi``, then ``%run`` and ``%container`` by the published name, which pull it back.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.kernel.driver import KernelDriver
from tests.support.registry import RegistryServer

HELLO_C = r"""
#include <unistd.h>
static const char msg[] = "Hello from gocloudcoder/hello-world!\n"
    "This image was built in a notebook, pushed to a registry and pulled back.\n";
int main(void) { return write(1, msg, sizeof msg - 1) == sizeof msg - 1 ? 0 : 1; }
"""


def compile_hello(directory: Path) -> None:
    """A static ``hello`` in the notebook's directory, like Docker's hello-world program."""
    source = directory / "hello.c"
    source.write_text(HELLO_C)
    subprocess.run(["gcc", "-static", "-Os", "-s", "-o", str(directory / "hello"), str(source)],
                   check=True, capture_output=True, timeout=120)


def test_build_push_remove_and_run_again_by_name(
    kernel: KernelDriver, registry: RegistryServer
) -> None:
    compile_hello(kernel.notebook)
    published = f"localhost:{registry.port}/gocloudcoder/hello-world"
    built = kernel.ok('%%containerfile gocloudcoder/hello-world\nFROM scratch\n'
                      'COPY hello /hello\nCMD ["/hello"]')
    assert "built docker.io/gocloudcoder/hello-world:latest" in built.stdout
    first = kernel.ok("%run --network none gocloudcoder/hello-world")
    assert "Hello from gocloudcoder/hello-world!" in first.stdout

    tagged = kernel.ok(f"%tag gocloudcoder/hello-world {published}")
    assert f"as {published}" in tagged.stdout
    pushed = kernel.ok(f"%push {published}")
    assert f"pushed {published}:latest: digest sha256:" in pushed.stdout

    removed = kernel.ok(f"%rmi {published} gocloudcoder/hello-world")
    assert f"Untagged: {published}:latest" in removed.stdout
    assert "Untagged: gocloudcoder/hello-world:latest" in removed.stdout
    assert "Deleted: sha256:" in removed.stdout
    assert "hello-world" not in kernel.ok("%images").stdout
    gone = kernel.run("%run --network none --pull never gocloudcoder/hello-world")
    assert gone.status == "error"

    again = kernel.ok(f"%run --network none {published}")  # pulled back from the registry
    assert "Hello from gocloudcoder/hello-world!" in again.stdout
    assert "gocloudcoder/hello-world" in kernel.ok("%images").stdout


def test_a_shared_image_with_a_shell_becomes_the_notebooks_container(
    kernel: KernelDriver, registry: RegistryServer
) -> None:
    (kernel.notebook / "greeting.txt").write_text("hello from the shared image\n")
    published = f"localhost:{registry.port}/gocloudcoder/hello-world-shell"
    kernel.ok(f"%%containerfile {published}\nFROM busybox\nCOPY greeting.txt /greeting.txt\n"
              "RUN echo built-in-the-notebook > /built.txt")
    kernel.ok(f"%push {published}")
    kernel.ok(f"%rmi {published}")
    assert "hello-world-shell" not in kernel.ok("%images").stdout

    used = kernel.ok(f"%container {published} --network none\ncat /greeting.txt /built.txt")
    assert used.stdout.endswith("hello from the shared image\nbuilt-in-the-notebook\n")
    assert "hello-world-shell" in kernel.ok("%ps").stdout
    # The notebook's container now holds the image: removing it needs -f, and keeps it.
    refused = kernel.run(f"%rmi {published}")
    assert refused.error is not None and refused.error[0] == "StoreError"
    assert "used by container" in refused.error[1] and "%rmi -f" in refused.error[1]
    forced = kernel.ok(f"%rmi -f {published}")
    assert "Untagged:" in forced.stdout and "Deleted: sha256" not in forced.stdout
    assert kernel.ok("cat /greeting.txt").stdout == "hello from the shared image\n"


def test_rmi_and_tag_errors(kernel: KernelDriver) -> None:
    missing = kernel.run("%rmi nosuch/image:1")
    assert missing.error is not None and missing.error[0] == "ImageNotFound"
    assert "nosuch/image" in missing.error[1]
    usage = kernel.run("%rmi")
    assert usage.error is not None and usage.error[0] == "MagicError"
    assert "usage: %rmi [-f] REF..." in usage.error[1]
    tag = kernel.run("%tag nosuch/image:1 other:1")
    assert tag.error is not None and tag.error[0] == "ImageNotFound"
    # One reference that cannot go does not stop the others.
    kernel.ok("%tag busybox spare/box:1")
    both = kernel.run("%rmi nosuch/image:1 spare/box:1")
    assert both.error is not None and both.error[0] == "ImageNotFound"
    assert "Untagged: spare/box:1" in both.stdout
    assert "spare/box" not in kernel.ok("%images").stdout
