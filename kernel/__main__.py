"""``python -m cellbox.kernel``: start the kernel (what the kernelspec runs)."""

from ipykernel.kernelapp import IPKernelApp

from .kernel import CellboxKernel

IPKernelApp.launch_instance(kernel_class=CellboxKernel)
