"""Searches along rows and the counts they give, one implementation per Keras backend.

The counting kernels place every distance of an anchor's row among the anchor's sorted
keys (`row_searchsorted`). Keras has no row-wise search; each backend's own op, or an
equivalent that is faster there, is used.
"""

from __future__ import annotations

from keras import backend, ops

from tftriplet.backend_ops import execution_mode


def row_searchsorted(sorted_rows, values, side="right"):
    """Per row, where `values[i, j]` would go in `sorted_rows[i]`.

    `side="right"` counts the entries `<= value` (`"left"`: `< value`), like
    `numpy.searchsorted` applied row by row.

    Args:
        sorted_rows: `(B, N)`, each row sorted ascending.
        values: `(B, Q)`, the same dtype.
        side: `"right"` or `"left"`.

    Returns:
        int32 `(B, Q)` counts in `[0, N]`.
    """
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right'; got {side!r}.")
    name = backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        if _compiled_with_static(sorted_rows):
            return binary_search(sorted_rows, values, side, _row_gather)
        return tf.searchsorted(sorted_rows, values, side=side, out_type=tf.int32)
    if name == "torch":
        import torch

        if sorted_rows.shape[1] <= TORCH_COMPARE_MAX_KEYS:
            return _torch_compare_count(sorted_rows, values, side)
        return torch.searchsorted(
            sorted_rows.contiguous(), values.contiguous(), right=side == "right", out_int32=True
        )
    if name == "jax":
        import jax
        import jax.numpy as jnp

        search = jax.vmap(lambda row, v: jnp.searchsorted(row, v, side=side))
        return search(sorted_rows, values).astype("int32")
    raise NotImplementedError(f"no row-wise searchsorted for the {name} backend")


#: PyTorch's CPU `searchsorted` takes about as long for 4 keys a row as for 64, and 3-5x
#: longer than comparing every value with each of 8 keys: up to this many keys a row,
#: `row_searchsorted` counts by comparisons under PyTorch (docs/performance.md).
TORCH_COMPARE_MAX_KEYS = 64


def _torch_compare_count(sorted_rows, values, side):
    """`row_searchsorted` under PyTorch as one comparison pass per key.

    The keys above each value are counted (in uint8: at most `TORCH_COMPARE_MAX_KEYS`
    keys) and taken from the row length, so a NaN value, above none, lands after every key
    as NumPy and `torch.searchsorted` place it.
    """
    import torch

    above = torch.gt if side == "right" else torch.ge
    count = torch.zeros(values.shape, dtype=torch.uint8, device=values.device)
    for j in range(sorted_rows.shape[1]):
        count.add_(above(sorted_rows[:, j:j + 1], values).view(torch.uint8))
    return count.to(torch.int32).neg_().add_(sorted_rows.shape[1])


def sorted_searchsorted(sorted_values, values, side):
    """`ops.searchsorted` of a 1-D sorted tensor, as int32, with an unknown length too.

    Keras' TensorFlow wrapper before 3.7 takes `len()` of the sequence, which fails on an
    unknown batch size in a graph; there TensorFlow's own op is used.
    """
    if backend.backend() == "tensorflow":
        import tensorflow as tf

        if _compiled_with_static(sorted_values):
            return binary_search(sorted_values, values, side, ops.take)
        return tf.searchsorted(sorted_values, values, side=side, out_type=tf.int32)
    return ops.cast(ops.searchsorted(sorted_values, values, side=side), "int32")


def _compiled_with_static(sorted_values):
    """Whether TensorFlow's XLA compiles this, with the searched length known: there
    `tf.searchsorted` compares every value with every entry (`O(Q N)` memory), so the
    search is done by `binary_search` instead."""
    return sorted_values.shape[-1] is not None and execution_mode() == "compiled"


def _row_gather(rows, index):
    return ops.take_along_axis(rows, index, axis=-1)


def binary_search(sorted_values, values, side, gather):
    """`searchsorted` by bisection: `O(Q log N)` work and `O(Q)` memory, the same counts.

    Args:
        sorted_values: sorted along the last axis, of static length `N`: `(N,)`, or
            `(B, N)` rows.
        values: `(Q,)`, or `(B, Q)` for rows.
        side: `"right"` (count the entries `<= value`) or `"left"` (`< value`).
        gather: `(sorted_values, int32 positions like values) -> entries there`.

    Returns:
        int32 counts in `[0, N]`, the shape of `values`.
    """
    n = sorted_values.shape[-1]
    low = ops.zeros(ops.shape(values), "int32")
    high = ops.full(ops.shape(values), n, "int32")
    for _ in range(max(n, 1).bit_length()):  # each halves [low, high]
        middle = (low + high) // 2
        entry = gather(sorted_values, ops.minimum(middle, max(n - 1, 0)))
        below = ops.less_equal(entry, values) if side == "right" else ops.less(entry, values)
        move = ops.logical_and(below, ops.less(middle, high))
        low, high = ops.where(move, middle + 1, low), ops.where(move, high, middle)
    return low

