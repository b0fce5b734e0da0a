"""Searches along rows and the counts they give, one implementation per Keras backend.

The counting kernels place every distance of an anchor's row among the anchor's sorted
keys (`row_searchsorted`) and count, for each key, the distances below it
(`row_search_counts`). Keras has no row-wise search; each backend's own op, or an
equivalent that is faster there, is used.
"""

from __future__ import annotations

from keras import backend, ops

from tftriplet.backend_ops import execution_mode
from tftriplet.histograms import row_bincount


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

    The keys above each value are counted (`_torch_keys_above`) and taken from the row
    length, so a NaN value, above none, lands after every key as NumPy and
    `torch.searchsorted` place it.
    """
    import torch

    above = _torch_keys_above(sorted_rows, values, strict=side == "right")
    return above.to(torch.int32).neg_().add_(sorted_rows.shape[1])


def _torch_keys_above(sorted_rows, values, strict=True, each_key=None):
    """uint8 `(B, Q)`: the keys of each row above each value (`>`, or `>=` if not
    `strict`), one comparison pass per key into a reused bool buffer (at most
    `TORCH_COMPARE_MAX_KEYS` keys); `each_key(p, padded)` sees key `p`'s comparison in that
    buffer, whose rows are padded with False to a multiple of 8 (`_torch_row_count`)."""
    import torch

    above_key = torch.gt if strict else torch.ge
    rows, width = values.shape
    padded = torch.zeros((rows, -(-width // 8) * 8), dtype=torch.bool, device=values.device)
    hit = padded[:, :width]
    above = torch.zeros(values.shape, dtype=torch.uint8, device=values.device)
    for p in range(sorted_rows.shape[1]):
        above_key(sorted_rows[:, p:p + 1], values, out=hit)
        above.add_(hit.view(torch.uint8))
        if each_key is not None:
            each_key(p, padded)
    return above


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


def row_search_counts(sorted_rows, values, dtype, start=None, counted=None):
    """Where each value goes among its row's sorted keys, and how many go below each key.

    With `s = row_searchsorted(sorted_rows, values, "right")` (the keys `<=` each value):

        below[i, p] = #{q counted : values[i, q] < sorted_rows[i, p]} = #{q counted : s[i, q] <= p}

    the histogram of `s` summed up to each key. Under PyTorch, up to
    `TORCH_COMPARE_MAX_KEYS` keys, both come from one comparison pass per key into
    buffers that are reused (a fresh `(B, Q)` tensor costs there more than a pass).

    Args:
        sorted_rows: `(B, N)`, each row sorted ascending.
        values: `(B, Q)`, the same dtype.
        dtype: the dtype of `s` (a float dtype holds these counts exactly).
        start: int `(B, 1)` added to `s` (its count starts there), or None for 0.
        counted: bool, broadcastable to `(B, Q)`: the values `below` counts, or None
            for all.

    Returns:
        `start + s` `(B, Q)` in `dtype`, and `below` int32 `(B, N)`.

    Example:
        ```python
        row_search_counts([[1.0, 3.0]], [[0.0, 2.0, 3.0, 5.0]], "float32")
        # ([[0., 1., 2., 2.]], [[1, 2]])
        ```
    """
    sorted_rows = ops.convert_to_tensor(sorted_rows)
    values = ops.convert_to_tensor(values, sorted_rows.dtype)
    dtype = backend.standardize_dtype(dtype)
    if backend.backend() == "torch" and sorted_rows.shape[1] <= TORCH_COMPARE_MAX_KEYS:
        return _torch_search_counts(sorted_rows, values, dtype, start, counted)
    n = ops.shape(sorted_rows)[1]
    s = row_searchsorted(sorted_rows, values, side="right")
    ids = s if counted is None else ops.where(counted, s, n)
    below = ops.cumsum(row_bincount(ids, n + 1), axis=1)[:, :n]
    s = ops.cast(s if start is None else s + start, dtype)
    return s, ops.cast(below, "int32")


def _torch_search_counts(sorted_rows, values, dtype, start, counted):
    """`row_search_counts` under PyTorch: the keys above each value (`_torch_keys_above`),
    each key's comparison counted along the rows as it is made; with no more values than
    keys, every key compared at once (`(B, N, Q)`, at most `N^2` a row)."""
    import torch

    rows, width = values.shape
    if width <= sorted_rows.shape[1]:
        hit = sorted_rows.unsqueeze(2) > values.unsqueeze(1)
        above = hit.sum(1, dtype=torch.uint8)
        if counted is not None:
            hit.logical_and_(torch.broadcast_to(counted, values.shape).unsqueeze(1))
        below = hit.sum(2, dtype=torch.int32)
    else:
        below = torch.empty((rows, sorted_rows.shape[1]), dtype=torch.int32,
                            device=values.device)

        def count_below(p, padded):
            if counted is not None:
                padded[:, :width].logical_and_(counted)
            below[:, p] = _torch_row_count(padded)

        above = _torch_keys_above(sorted_rows, values, each_key=count_below)
    # s = keys - above: a NaN value, above no key, lands after every key as in NumPy
    s = above.to(getattr(torch, dtype)).neg_().add_(sorted_rows.shape[1])
    return (s if start is None else s.add_(start)), below


#: Bytes of a bool row summed at once as int64 words by `_torch_row_count`: each byte of
#: the sum counts at most this many True entries, so no carry crosses a byte and the sum
#: stays below 2**63.
_WORDS_A_RUN = 127


def _torch_row_count(padded):
    """The True entries of each row of a contiguous bool `(B, 8 m)` PyTorch tensor, int32
    `(B,)`.

    The rows are read as `m` int64 words of 8 entries each, summed in runs of
    `_WORDS_A_RUN` words (each byte of a run's sum is the count of its lane), and the
    runs' bytes summed in int32: one pass over the bytes, where a row sum of the bools
    first widens every entry.
    """
    import torch

    words = padded.view(torch.int64)
    rows, m = words.shape
    runs = m // _WORDS_A_RUN * _WORDS_A_RUN
    sums = [words[:, runs:].sum(1, keepdim=True)]
    if runs:
        sums.append(words[:, :runs].reshape(rows, -1, _WORDS_A_RUN).sum(2))
    return torch.cat(sums, 1).view(torch.uint8).sum(1, dtype=torch.int32)
