"""Per-row histograms, one implementation per Keras backend.

The counting kernels histogram, per anchor row, small integers (the place of each column
among the anchor's positives): most columns of a row fall in the same bin, and a histogram
kernel that adds them one after another into one counter waits on each addition (a chain
of increments of the same memory). Here consecutive columns count into different copies
of their row's bins, all rows of a block go to one flat histogram (TensorFlow's
multi-threaded bincount), and the copies are added up after.
"""

from __future__ import annotations

from keras import backend, ops

from tftriplet.backend_ops import concrete_int

#: The most copies of each row's bins that consecutive columns of `row_bincount` count into.
INTERLEAVE = 16


def row_bincount(ids, num_bins):
    """Per row, how often each of `0 .. num_bins - 1` occurs in `ids`.

    Args:
        ids: int32 `(B, N)` with values in `[0, num_bins)`.
        num_bins: the number of bins.

    Returns:
        int32 `(B, num_bins)`.
    """
    return bincount_flat_ids(flat_bin_ids(ids, num_bins), num_bins)


def _copies(num_columns, num_bins):
    """Copies of a row's bins: `INTERLEAVE`, fewer where the bins would outnumber the
    columns (an int, or a tensor when a size is known only when the graph runs)."""
    n, bins = concrete_int(num_columns), concrete_int(num_bins)
    if n is not None and bins is not None:
        return max(1, min(INTERLEAVE, n // bins))
    return ops.maximum(1, ops.minimum(INTERLEAVE, num_columns // num_bins))


def flat_bin_ids(ids, num_bins):
    """Where `row_bincount` counts each entry of `ids` `(B, N)`: one flat bin per row, bin
    and copy (the column modulo the copies), int32 `(B, N)`.

    Consecutive columns land in different copies of their row's bins, so that a histogram
    of mostly equal ids (most negatives fall in one bin) is not one chain of increments
    of the same counter. Elementwise: a compiled kernel computes it with `ids`.
    """
    b, n = ops.shape(ids)[0], ops.shape(ids)[1]
    copies = _copies(n, num_bins)
    row = ops.expand_dims(ops.arange(b, dtype="int32") * (num_bins * copies), 1)
    column = ops.expand_dims(ops.arange(n, dtype="int32") % copies * num_bins, 0)
    return ids + row + column


def bincount_flat_ids(flat_ids, num_bins, dtype="int32"):
    """The `(B, num_bins)` histogram of `flat_bin_ids` `(B, N)`, in `dtype`.

    The copies are added in floating point (TensorFlow keeps int32 arithmetic on a GPU in
    host memory), which is exact: every count is at most `N`, below 2**24.
    """
    b, n = ops.shape(flat_ids)[0], ops.shape(flat_ids)[1]
    copies = _copies(n, num_bins)
    size = b * copies * num_bins
    flat = ops.reshape(flat_ids, (-1,))
    name = backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        # The raw op: tf.math.bincount would first take the maximum of ids (a B x N pass).
        counts = tf.raw_ops.DenseBincount(input=flat, size=size,
                                          weights=tf.zeros((0,), flat.dtype))
    elif name == "torch":
        import torch

        # Much faster than Keras' segment_sum on torch (docs/performance.md).
        counts = torch.bincount(flat, minlength=size)
    else:
        counts = ops.segment_sum(ops.ones_like(flat), flat, num_segments=size)
    exact = "float32" if dtype == "int32" else dtype
    counts = ops.sum(ops.reshape(ops.cast(counts, exact), (b, copies, num_bins)), axis=1)
    return ops.cast(counts, dtype)
