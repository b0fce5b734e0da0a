"""PyTorch's float32 matrix products on an x86-64 CPU through oneDNN.

PyTorch multiplies float32 matrices on a CPU with MKL's `sgemm`. The same wheel carries
oneDNN, whose kernels TensorFlow's CPU products use; on the AMD CPU of
docs/performance.md they multiply the engine's blocks about twice as fast as MKL does.
PyTorch reaches oneDNN for a float32 product only through the op its compiler emits,
`torch.ops.mkldnn._linear_pointwise` (`x @ w^T`, and with `.binary` plus an addend in the
same pass). That op is private, so it is used only where it gave the exact product of a
small case when first asked (`available`), and only for 2-D float32 CPU tensors outside
autograd and outside `torch.compile` (`applies`). Everywhere else the callers in
`tftriplet.backend_ops` take PyTorch's own product.
"""

from __future__ import annotations

import functools
import platform

#: `platform.machine()` of the CPUs the oneDNN products were measured on.
X86_64 = ("x86_64", "amd64")


@functools.cache
def available():
    """Whether oneDNN's products can be used here: an x86-64 CPU, and the op exists and
    gives the exact products of small integer matrices (plain, and with an addend)."""
    if platform.machine().lower() not in X86_64:
        return False
    import torch

    try:
        linear = torch.ops.mkldnn._linear_pointwise
        x = torch.arange(6.0).reshape(2, 3)
        w = torch.arange(12.0).reshape(4, 3)
        addend = torch.arange(8.0).reshape(2, 4)
        return (torch.equal(linear(x, w, None, "none", [], ""), x @ w.T)
                and torch.equal(linear.binary(x, addend, w, None, "add"), x @ w.T + addend))
    except Exception:  # a private op: missing, renamed or rejecting these arguments
        return False


def applies(*tensors):
    """Whether the product of these PyTorch tensors goes through oneDNN: all 2-D float32
    on the CPU, none tracked by autograd, not inside `torch.compile`, and `available`."""
    import torch

    if torch.compiler.is_compiling():
        return False
    tracking = torch.is_grad_enabled()
    return all(
        t.dtype == torch.float32 and t.ndim == 2 and t.device.type == "cpu"
        and not (tracking and t.requires_grad)
        for t in tensors
    ) and available()


def product(a, b):
    """`a @ b` (`(M, N) @ (N, K)`) through oneDNN, or None where it does not apply.

    oneDNN reads its first factor by rows: `a` when it is stored by rows, else the
    product is taken as `(b^T @ a^T)^T` when `b^T` is; None when neither is.
    """
    if not applies(a, b):
        return None
    import torch

    linear = torch.ops.mkldnn._linear_pointwise
    if a.is_contiguous():
        return linear(a, b.T, None, "none", [], "")
    if b.T.is_contiguous():
        return linear(b.T, a, None, "none", [], "").T
    return None


def zeros_by_columns(like):
    """Zeros of the shape of the 2-D `like`, stored by columns (the transpose is
    contiguous): the accumulator `subtract_product` adds into in one pass; None where
    oneDNN does not apply to `like`."""
    if not applies(like):
        return None
    import torch

    return torch.zeros_like(like.T, memory_format=torch.contiguous_format).T


def subtract_product(accumulator, a, b):
    """`accumulator - a^T @ b` (`a` `(N, M)`, `b` `(N, K)`, the accumulator `(M, K)` from
    `zeros_by_columns`) as a new tensor stored by columns, the subtraction done in the
    product's own pass; None where oneDNN does not apply or the accumulator is stored by
    rows."""
    if not (applies(accumulator, a, b) and accumulator.T.is_contiguous()):
        return None
    import torch

    # (acc - a^T b)^T = (-b^T) @ (a^T)^T + acc^T, with the factor read by rows
    minus_b_t = b.T.neg().contiguous()
    return torch.ops.mkldnn._linear_pointwise.binary(
        minus_b_t, accumulator.T, a.T, None, "add").T
