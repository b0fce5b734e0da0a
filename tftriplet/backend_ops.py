"""The few primitives `keras.ops` lacks, one implementation per Keras backend.

Everything else in tftriplet is written with `keras.ops`; these functions reach for the
backend's own op where Keras has none (a bitcast on old Keras versions, a scatter-add, a
function XLA compiles inside a TensorFlow graph) or where its generic form costs several
passes. Searches along rows are in `tftriplet.searches`, per-row histograms in
`tftriplet.histograms`.
"""

from __future__ import annotations

import numpy as np
from keras import backend, ops


def xla_compiles_in_graphs():
    """Whether a TensorFlow graph may call an XLA-compiled function (`xla_function`):
    not with tensorflow-metal's GPU on Apple silicon, which XLA does not support (the case
    in which Keras' `jit_compile="auto"` turns XLA off too)."""
    import platform

    try:
        import tensorflow as tf
    except ImportError:  # no TensorFlow graph to run in
        return True
    apple_silicon = platform.system() == "Darwin" and "arm" in platform.processor().lower()
    return not (apple_silicon and tf.config.list_physical_devices("GPU"))


def accelerator_visible():
    """Whether the backend computes on a GPU or TPU: JAX's default backend is one,
    TensorFlow sees one, or PyTorch sees a CUDA or MPS device (where Keras puts its
    tensors)."""
    name = backend.backend()
    if name == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if name == "tensorflow":
        import tensorflow as tf

        return any(tf.config.list_logical_devices(kind) for kind in ("GPU", "TPU"))
    if name == "torch":
        import torch

        return torch.cuda.is_available() or torch.backends.mps.is_available()
    return False


def xla_function(fn):
    """`fn` as one XLA-compiled TensorFlow function (`tf.function(jit_compile=True)`),
    which a TensorFlow graph calls as a single op; compiled once per input shape when it
    first runs."""
    import tensorflow as tf

    return tf.function(fn, jit_compile=True, autograph=False)


def bitcast(x, dtype):
    """`x` reinterpreted as `dtype` of the same width (`ops.view`).

    Keras' TensorFlow `view` tests the last dimension in Python, which fails on an
    unknown batch size; a static last dimension of 1 sidesteps that. Keras before 3.12 has
    no `ops.view`: there each backend's own bitcast does the same.
    """
    if hasattr(ops, "view"):
        return ops.reshape(ops.view(ops.reshape(x, (-1, 1)), dtype), ops.shape(x))
    name = backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        return tf.bitcast(x, dtype)
    if name == "jax":
        import jax

        return jax.lax.bitcast_convert_type(x, dtype)
    if name == "torch":
        import torch

        return x.view(getattr(torch, dtype))
    raise NotImplementedError(f"no bitcast for the {name} backend in this Keras version")


def matmul_t(a, b, transpose_a=False, transpose_b=False):
    """`a @ b` with either factor transposed in the product itself.

    Under TensorFlow the transposes are the product's flags, so the same kernel runs
    eagerly and in a graph (Grappler folds a separate transpose into the product only in a
    graph, and the two kernels round differently) and no transposed copy is made. JAX and
    PyTorch take the transposed views as they are. Under PyTorch, float32 CPU factors
    outside autograd are multiplied by oneDNN (`tftriplet.onednn`), the others by
    PyTorch's own product, which keeps float64 (Keras' PyTorch `matmul` computes float64
    tensors in float32).
    """
    if backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)
    a, b = (ops.transpose(a) if transpose_a else a), (ops.transpose(b) if transpose_b else b)
    if backend.backend() == "torch" and _torch_full_precision(a, b):
        from tftriplet import onednn

        result = onednn.product(a, b)
        return a @ b if result is None else result
    return ops.matmul(a, b)


def _torch_full_precision(a, b):
    """Whether PyTorch multiplies `a` and `b` in their own dtype: both float32 or both
    float64 (Keras casts half precision up on a CPU)."""
    import torch

    return a.dtype == b.dtype and a.dtype in (torch.float32, torch.float64)


def divide_or_zero(numerator, denominator, overwrite=False):
    """`numerator / denominator`, 0 where the denominator is 0 (not differentiated).

    One pass in TensorFlow (`DivNoNan`), two in PyTorch (a division, then `nan_to_num` in
    place, several times faster than Keras' `divide_no_nan` there); a `where` elsewhere
    (XLA fuses it under `jax.jit`).

    Args:
        numerator: a tensor.
        denominator: a tensor of the same dtype, broadcastable to it.
        overwrite: the numerator is the caller's own fresh tensor, which may hold the
            result: under PyTorch outside autograd it is divided in place.
    """
    name = backend.backend()
    if name == "tensorflow":
        return ops.divide_no_nan(numerator, denominator)
    if name == "torch":
        in_place = overwrite and not _torch_tracked(numerator)
        quotient = numerator.div_(denominator) if in_place else numerator / denominator
        return quotient.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
    nonzero = ops.greater(denominator, 0.0)
    return ops.where(nonzero, numerator / ops.where(nonzero, denominator, 1.0), 0.0)


def scatter_into(tensor, index, values):
    """`ops.scatter_update(tensor, index, values)`, written into `tensor` (the caller's own
    fresh tensor) under PyTorch outside autograd instead of into a copy."""
    if backend.backend() == "torch" and not _torch_tracked(tensor):
        index = index.long()
        tensor[tuple(index[:, axis] for axis in range(index.shape[1]))] = values.to(
            tensor.dtype)
        return tensor
    return ops.scatter_update(tensor, index, values)


def squared_from_product(minus_two_dot, row_norm, column_norm, root=False):
    """`max((row_norm[:, None] + minus_two_dot) + column_norm[None, :], 0)`, or its square
    root: squared Euclidean (or Euclidean) distances from `-2 a.b` and the squared norms.

    Under PyTorch, where autograd does not track `minus_two_dot`, the result is written
    over it (the caller's fresh product) instead of into a new tensor a pass: each new
    `(A, B)` tensor there costs more than the pass itself.

    Args:
        minus_two_dot: `(A, B)`, `-2` times the rows' dot products.
        row_norm: `(A,)` squared norms of the rows.
        column_norm: `(B,)` squared norms of the columns.
        root: return the square root (the Euclidean distance).
    """
    if backend.backend() == "torch" and not _torch_tracked(minus_two_dot):
        sq = minus_two_dot.add_(row_norm[:, None]).add_(column_norm[None, :]).clamp_min_(0.0)
        return sq.sqrt_() if root else sq
    sq = ops.expand_dims(row_norm, 1) + minus_two_dot + ops.expand_dims(column_norm, 0)
    # Never -0.0: (x - y) + z with z >= +0 is +0 when it is zero.
    sq = ops.maximum(sq, 0.0)
    return ops.sqrt(sq) if root else sq


def _torch_tracked(x):
    """Whether PyTorch's autograd records operations on the tensor `x`."""
    import torch

    return torch.is_grad_enabled() and x.requires_grad


def row_dot(a, b):
    """`sum(a * b, axis=1)` for `(A, B)` tensors, without the `(A, B)` product under
    PyTorch (a batched product of each row with the other's)."""
    if backend.backend() == "torch":
        return (a.unsqueeze(1) @ b.unsqueeze(2)).reshape(-1)
    return ops.sum(a * b, axis=1)


def concrete_int(x):
    """`x` as a Python int if its value is known now (eager, or a constant), else None."""
    if x is None:
        return None
    if isinstance(x, (int, np.integer)):
        return int(x)
    name = backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        value = tf.get_static_value(x)
        return None if value is None else int(value)
    if name == "jax":
        import jax

        try:
            return int(x)
        except jax.errors.ConcretizationTypeError:
            return None
    return int(x)


def gpu_comparable(x):
    """`x` for an element-wise comparison that runs on the GPU: int32 widened to int64
    under TensorFlow, unchanged otherwise.

    TensorFlow's GPU kernels of element-wise int32 ops (`Equal`, `NotEqual`...) keep
    their inputs and outputs in host memory, so outside XLA a `B x B` comparison of int32
    labels or indices runs on the CPU; the int64 kernels run on the GPU. The widening is
    exact, so every comparison gives the same result.
    """
    if backend.backend() == "tensorflow" and backend.standardize_dtype(x.dtype) == "int32":
        return ops.cast(x, "int64")
    return x


def add_to_rows(accumulator, index, updates):
    """`accumulator` with `updates[a]` added to its row `index[a]` (a scatter-add).

    Args:
        accumulator: `(B, D)`.
        index: int32 `(A,)` row indices (repeats add up).
        updates: `(A, D)`, the dtype of `accumulator`.

    Returns:
        The `(B, D)` sum, without a `(B, D)` temporary of zeros where the backend can add
        in place (TensorFlow's `tensor_scatter_nd_add`, JAX's `.at[].add`, PyTorch's
        `index_add`). The accumulator is the caller's own: under PyTorch outside autograd
        the updates are added into it.
    """
    name = backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        return tf.tensor_scatter_nd_add(accumulator, tf.expand_dims(index, 1), updates)
    if name == "jax":
        return accumulator.at[index].add(updates)
    if name == "torch":
        if _torch_tracked(accumulator):
            return accumulator.index_add(0, index.long(), updates)
        return accumulator.index_add_(0, index.long(), updates)
    return accumulator + ops.scatter(ops.expand_dims(index, 1), updates, ops.shape(accumulator))


def accumulator_zeros(like):
    """Zeros of the shape and dtype of the 2-D `like`, for `subtract_product` to add into:
    under PyTorch where oneDNN applies, stored by columns (`tftriplet.onednn`)."""
    if backend.backend() == "torch":
        from tftriplet import onednn

        zeros = onednn.zeros_by_columns(like)
        if zeros is not None:
            return zeros
    return ops.zeros_like(like)


def subtract_product(accumulator, a, b):
    """`accumulator - a^T @ b` (`a` `(N, M)`, `b` `(N, K)`, the accumulator `(M, K)`).

    The accumulator is the caller's own: under PyTorch outside autograd the product is
    subtracted within the matrix product itself, with no `(M, K)` temporary: by oneDNN
    into a new accumulator stored by columns where it applies (from `accumulator_zeros`),
    else by PyTorch's `addmm_` into the same one.
    """
    if backend.backend() == "torch" and not _torch_tracked(accumulator):
        from tftriplet import onednn

        result = onednn.subtract_product(accumulator, a, b)
        if result is not None:
            return result
        return accumulator.addmm_(a.T, b, alpha=-1.0)
    return accumulator - matmul_t(a, b, transpose_a=True)


def sequential_loop(num_iterations, body, initial, overlap=1):
    """`body(i, carry)` for `i` in `0 .. num_iterations - 1`, `overlap` at a time at most.

    `keras.ops.fori_loop` lets TensorFlow run up to ten iterations of a `while_loop` at
    once, which would keep that many iterations' temporaries alive; here TensorFlow runs
    at most `overlap` (its `parallel_iterations`; XLA, JAX and PyTorch run one at a time).
    `num_iterations` may be a tensor (a size known only when the graph runs).
    """
    if backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.while_loop(
            lambda i, carry: i < num_iterations,
            lambda i, carry: (i + 1, body(i, carry)),
            (tf.constant(0, "int32"), initial),
            parallel_iterations=overlap,
        )[1]
    if backend.backend() == "torch":
        carry = initial
        for i in range(int(num_iterations)):
            carry = body(i, carry)
        return carry
    return ops.fori_loop(0, num_iterations, body, initial)


def with_gradient_of(value, gradient, embeddings):
    """`value`, whose gradient with respect to `embeddings` is `gradient`.

    The analytic kernels compute their gradient themselves instead of differentiating
    through a sort; this attaches it with each backend's custom gradient, so the value is
    `value` exactly (a surrogate `value + s - stop_gradient(s)` may be reassociated by an
    optimizer such as TensorFlow's Grappler, which moves the value by an ulp).

    Args:
        value: a scalar computed without a gradient path to `embeddings`.
        gradient: `(B, D)`, d value / d embeddings.
        embeddings: `(B, D)`, the tensor the gradient flows to.
    """
    name = backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        @tf.custom_gradient
        def attach(value, gradient, embeddings):
            def backward(upstream):
                return upstream, tf.zeros_like(gradient), upstream * gradient

            return tf.identity(value), backward

        return attach(value, gradient, embeddings)
    if name == "jax":
        return _jax_attach()(value, gradient, embeddings)
    if name == "torch":
        return _torch_attach().apply(value, gradient, embeddings)
    surrogate = ops.sum(ops.stop_gradient(gradient) * embeddings)
    return value + (surrogate - ops.stop_gradient(surrogate))


def _jax_attach():
    import jax

    @jax.custom_vjp
    def attach(value, gradient, embeddings):
        return value

    def forward(value, gradient, embeddings):
        return value, gradient

    def backward(gradient, upstream):
        return upstream, jax.numpy.zeros_like(gradient), upstream * gradient

    attach.defvjp(forward, backward)
    return attach


def _torch_attach():
    import torch

    class Attach(torch.autograd.Function):
        @staticmethod
        def forward(ctx, value, gradient, embeddings):
            ctx.save_for_backward(gradient)
            return value.clone()

        @staticmethod
        def backward(ctx, upstream):
            (gradient,) = ctx.saved_tensors
            return upstream, None, upstream * gradient

    return Attach


def execution_mode():
    """How the code being traced or run now executes: `"eager"`, `"graph"` or `"compiled"`.

    `"compiled"` under XLA (TensorFlow's `jit_compile`) and always under JAX, whose ops
    are compiled by XLA even outside `jax.jit`: every shape is fixed when compiling.
    `"graph"` in a TensorFlow graph that XLA does not compile, where a shape may depend on
    a value (`top_k`'s `k`, `range`'s length). `"eager"`: eager TensorFlow and PyTorch.
    """
    name = backend.backend()
    if name == "jax":
        return "compiled"
    if name != "tensorflow":
        return "eager"
    import tensorflow as tf

    if tf.executing_eagerly():
        return "eager"
    try:
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - private module moved: assume XLA, stay safe
        return "compiled"
    in_xla = control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())
    return "compiled" if in_xla else "graph"
