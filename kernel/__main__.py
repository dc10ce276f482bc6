"""``python -m cellbox.kernel``: start the kernel (what the kernelspec runs)."""

from .app import CellboxKernelApp
from .kernel import CellboxKernel

CellboxKernelApp.launch_instance(kernel_class=CellboxKernel)
