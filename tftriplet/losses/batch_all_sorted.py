"""Exact batch-all triplet loss in O(B^2) memory and O(B^2 log B) time.

The dense form (:mod:`tftriplet.losses.batch_all_dense`, the definition as it reads)
builds ``(B, B, B)`` tensors. Per anchor ``i`` the hinge of a valid triple
``(i, j, k)`` (``j`` a positive, ``k`` a negative of ``i``) is positive iff
``d_ik < d_ij + m``, so everything the loss needs is a count of comparisons between the
anchor's positives (shifted by the margin) and its negatives:

* ``c_ij = #{k negative of i : d_ik < d_ij + m}``  (the positive hinges of pair ``(i, j)``)
* ``r_ik = #{j positive of i : d_ij + m > d_ik}``  (the positive hinges of pair ``(i, k)``)

and, with ``N = sum_ij c_ij`` (= ``sum_ik r_ik``, the number of positive triples)::

    sum of hinges = sum_ij c_ij (d_ij + m) - sum_ik r_ik d_ik
    loss          = sum of hinges / max(N, 1)
    d loss / d d_ij = W_ij / max(N, 1),   W_ij = c_ij (positive pair), -r_ik (negative pair)

Both counts come from sorting, one of two ways (:func:`pair_coefficients`, ``row_sort``).

**Positives only** (the default wherever it can run, when no anchor has more than ``B // 8``
positives, as in P x K batches): per row, the ``n_i`` keys ``d_ij + m`` of the positives are
sorted (``top_k``); each negative's ``s_ik`` = the number of keys ``<= d_ik`` is a binary
search (so ``r_ik = n_i - s_ik``); and ``c`` of the positive at sorted position ``p`` is the
number of negatives with ``s_ik <= p``, a per-row histogram of ``s`` and its prefix sum.
That is ``O(B^2 log k)`` for ``k`` positives per anchor, nothing is sorted at length ``B``,
and only the ``(B, k)`` values of ``c`` are scattered back. ``top_k`` needs ``k`` as a
number, which XLA and ``jax.jit`` do not allow at trace time; there the merged sort runs.

**Merged**: one sort per anchor row: positives keyed by ``d_ij + m``, negatives by
``d_ik``, merged in ascending order with a positive placed before a negative of equal key
(the hinge must be strictly positive). In that order ``c`` of a positive is the number of
negatives before it and ``r`` of a negative the number of positives after it: one prefix
count per row. The sort is an integer sort of the float bits (non-negative IEEE floats
order like their bit patterns) with the pair type in the lowest bit, so ties are broken
exactly, not by rounding. The counts go back to the row's original order with one scatter
(a segment sum).

The gradient is analytic: ``W`` is a constant (a rank count, not differentiated through the
sort), and the chain rule through ``d_ij = ||e_i - e_j||`` gives, with
``G_ij = W_ij / d_ij`` (0 where ``d_ij = 0``; ``2 W_ij`` for squared distances) and
``S = G + G^T``::

    d loss / d e = (rowsum(S) * e - S @ e) / max(N, 1)

(the same subgradient 0 at ``d_ij = 0`` as :func:`tftriplet.distances.pairwise_distances`).

It enters the graph through ``loss + sum(stop_gradient(g) * e) - stop_gradient(same)``,
whose value is the loss and whose gradient with respect to ``e`` is ``g``, on every Keras
backend. Memory is a few ``(B, B)`` tensors; nothing of size ``B^3`` exists.

Reference:
    Hermans, Beyer, Leibe. "In Defense of the Triplet Loss for Person Re-Identification",
    2017, https://arxiv.org/abs/1703.07737 (batch-all, averaged over the non-zero terms).
"""

from __future__ import annotations

import numpy as np
from keras import backend, ops

from tftriplet.backend_ops import (
    bitcast,
    concrete_int,
    divide_or_zero,
    in_graph_without_xla,
    row_bincount,
    row_searchsorted,
    sorted_searchsorted,
)
from tftriplet.masks import off_diagonal_mask, same_label_mask

ROW_SORTS = ("auto", "merged", "positives")

#: ``row_sort="auto"`` sorts only the positives while every anchor has at most
#: ``B // POSITIVES_SORT_MAX_DIVISOR`` of them (docs/performance.md).
POSITIVES_SORT_MAX_DIVISOR = 8


def class_sizes(labels):
    """For every sample, the number of samples with its label (itself included), int32.

    From one sort of the ``B`` labels and two binary searches: ``O(B log B)``, no ``B x B``
    pass.
    """
    ordered = ops.sort(labels)
    upper = sorted_searchsorted(ordered, labels, side="right")
    lower = sorted_searchsorted(ordered, labels, side="left")
    return upper - lower


def _positives_max(batch_size):
    """The largest ``k`` (positives per anchor) for which ``row_sort="auto"`` sorts only the
    positives: above it a full sort of the row is as fast (docs/performance.md)."""
    return batch_size // POSITIVES_SORT_MAX_DIVISOR


def choose_row_sort(row_sort, batch_size, k):
    """Which counting kernel :func:`pair_coefficients` runs, and ``k`` if known now.

    Args:
        row_sort: ``"auto"``, ``"merged"`` or ``"positives"``.
        batch_size: ``B``, an int or a scalar tensor.
        k: the largest number of positives of an anchor, an int or a scalar tensor.

    Returns:
        ``(kernel, k)``: ``kernel`` is ``"merged"``, ``"positives"`` or ``"runtime"`` (a
        TensorFlow graph decides when it runs, by the value of ``k``); ``k`` is a Python
        int when known now, else None.
    """
    if row_sort == "merged":
        return "merged", None
    k_now = concrete_int(k)
    b_now = concrete_int(batch_size)
    if k_now is not None and b_now is not None:
        if row_sort == "positives" or k_now <= _positives_max(b_now):
            return "positives", k_now
        return "merged", None
    if in_graph_without_xla():
        return ("positives" if row_sort == "positives" else "runtime"), k_now
    if row_sort == "positives":
        raise ValueError(
            "row_sort='positives' needs the largest class size when the graph is built; "
            "under XLA or jax.jit it is unknown. Use row_sort='auto' (a full sort there)."
        )
    return "merged", None


def _int_view(float_dtype):
    """The signed integer dtype of the same width, and its maximum."""
    if float_dtype == "float64":
        return "int64", 2**63 - 1
    return "int32", 2**31 - 1


def _distances(embeddings, squared):
    """Pairwise distances with the same rounding as :func:`pairwise_distances` off the
    diagonal, in fewer ``(B, B)`` passes; the diagonal is left as computed (never used)."""
    # -2 e e^T in one product (scaling by -2 is exact), so n_i + (-2 dot) + n_j rounds as
    # n_i - 2 dot + n_j does.
    minus_two_dot = ops.matmul(-2.0 * embeddings, ops.transpose(embeddings))
    sq_norm = -0.5 * ops.diagonal(minus_two_dot)
    sq = ops.expand_dims(sq_norm, 1) + minus_two_dot + ops.expand_dims(sq_norm, 0)
    # Never -0.0: (x - y) + z with z >= +0 is +0 when it is zero.
    sq = ops.maximum(sq, 0.0)
    return sq if squared else ops.sqrt(sq)


def _row_cumsum(x, block=32):
    """Inclusive cumulative sum along rows of a 0/1 matrix, as a blocked matrix product.

    Within blocks of ``block`` columns the prefix sums are one product with a triangular
    matrix of ones, and the block totals are then carried with a short cumulative sum. Sums
    of 0/1 below 2**24 are exact in float32, so this equals ``ops.cumsum``; on CPU it is
    several times faster (docs/performance.md). Falls back to ``ops.cumsum``
    when the row length is unknown or not a multiple of ``block``.
    """
    n = x.shape[1]
    if n is None or n % block != 0 or n <= block:
        return ops.cumsum(x, axis=1)
    rows = ops.shape(x)[0]
    # [p, q] = 1 for p <= q; a constant (ops.triu fails in tf.function before Keras 3.7)
    triangle = ops.convert_to_tensor(np.triu(np.ones((block, block))), dtype=x.dtype)
    within = ops.reshape(ops.matmul(ops.reshape(x, (-1, block)), triangle), (rows, -1, block))
    totals = within[:, :, -1]
    carried = ops.cumsum(totals, axis=1) - totals
    return ops.reshape(within + ops.expand_dims(carried, 2), (rows, n))


def _merged_order_keys(labels, distances, margin):
    """Integer sort keys whose descending order is the merged ascending order of each row.

    Positives get ``d_ij + m``, negatives ``d_ik``; a positive precedes a negative of equal
    key. ``key = MAX - 2 * bits(value) - is_negative``: for non-negative floats the bit
    pattern is monotone in the value, and the result never overflows. The diagonal (neither
    positive nor negative) gets the dtype's minimum, so it sorts last in every row.
    """
    int_dtype, int_max = _int_view(backend.standardize_dtype(distances.dtype))
    same = same_label_mask(labels)
    bits = bitcast(ops.where(same, distances + margin, distances), int_dtype)
    base = ops.where(same, ops.cast(int_max, int_dtype), ops.cast(int_max - 1, int_dtype))
    keys = (base - bits) - bits
    off_diagonal = off_diagonal_mask(ops.shape(labels)[0])
    return ops.where(off_diagonal, keys, ops.cast(-int_max - 1, int_dtype))


def _merged_pair_coefficients(labels, distances, margin):
    """``W`` from one full sort of every row (positives and negatives merged)."""
    dtype = distances.dtype
    b = ops.shape(distances)[0]
    sorted_keys, order = ops.top_k(_merged_order_keys(labels, distances, margin), b)
    # Key parity: MAX is odd, so a key is even iff the entry is a negative. The diagonal
    # (last in every row, even) reads as a negative with no positive after it: weight 0.
    neg = ops.equal(ops.bitwise_and(sorted_keys, 1), 0)
    negatives_so_far = _row_cumsum(ops.cast(neg, dtype))
    num_neg_per_row = negatives_so_far[:, -1:] - 1.0  # without the diagonal
    num_pos_per_row = ops.cast(b - 1, dtype) - num_neg_per_row
    rank = ops.expand_dims(ops.cast(ops.arange(1, b + 1, dtype="int32"), dtype), 0)
    # A positive's weight c: the negatives before it (ties sort after it). A negative's
    # weight -r: minus the positives after it, r = |P| - (rank - negatives so far).
    w_sorted = ops.where(neg, (rank - num_pos_per_row) - negatives_so_far, negatives_so_far)
    # Per-row counts are exact in float32 (below 2**24); the totals are summed last.
    num_positive = ops.sum(ops.sum(ops.relu(w_sorted), axis=1))
    # Back to the original column order: a segment sum over flat indices is a scatter
    # (each index occurs once), and on CPU much faster than a scatter op.
    row_start = ops.expand_dims(ops.arange(b, dtype="int32") * ops.cast(b, "int32"), 1)
    flat_index = ops.reshape(ops.cast(order, "int32") + row_start, (-1,))
    coefficients = ops.segment_sum(
        ops.reshape(w_sorted, (-1,)), flat_index, num_segments=b * b, sorted=False
    )
    return ops.reshape(coefficients, (b, b)), num_positive


def _positives_pair_coefficients(labels, distances, margin, num_positives, k):
    """``W`` from a sort of each row's positives only and a binary search per negative.

    ``k`` is the largest number of positives of any anchor (at least 1). Per row the
    positives' keys ``d_ij + m`` are sorted ascending (``top_k`` of their negation, so
    non-positives come last as ``+inf``); for a negative ``s_ik`` = the number of keys
    ``<= d_ik`` (a right-sided binary search), so ``r_ik = n_i - s_ik``; and ``c`` of the
    positive at sorted position ``p`` is the number of negatives with ``s_ik <= p`` (a
    per-row histogram of ``s`` and its prefix sum). Only ``(B, k)`` values are scattered back.
    """
    dtype = distances.dtype
    b = ops.shape(distances)[0]
    same = same_label_mask(labels)
    positive = ops.logical_and(same, off_diagonal_mask(b))
    # -(d + m) rounds exactly as -m - d (rounding is symmetric), so -top_k is fl(d + m).
    negated, columns = ops.top_k(ops.where(positive, (-margin) - distances, -np.inf), k)
    keys = -negated
    n = ops.expand_dims(num_positives, 1)
    # Same-label entries (the diagonal too) get s = n_i: weight 0, and a histogram bin
    # that no real positive (sorted position < n_i) counts.
    s = ops.where(same, n, row_searchsorted(keys, distances, side="right"))
    w = ops.cast(s - n, dtype)  # -r_ik on negative pairs, 0 elsewhere
    below = ops.cumsum(row_bincount(s, k + 1), axis=1)[:, :k]
    real = ops.less(ops.expand_dims(ops.arange(k, dtype="int32"), 0), n)
    c = ops.where(real, ops.cast(below, dtype), ops.zeros((), dtype))
    # Pad slots point at the diagonal, whose weight is 0, and write 0 there.
    rows = ops.broadcast_to(ops.expand_dims(ops.arange(b, dtype="int32"), 1), ops.shape(columns))
    cols = ops.where(real, ops.cast(columns, "int32"), rows)
    scatter_index = ops.reshape(ops.stack([rows, cols], axis=-1), (-1, 2))
    w = ops.scatter_update(w, scatter_index, ops.reshape(c, (-1,)))
    return w, ops.sum(ops.sum(c, axis=1))


def pair_coefficients(labels, distances, margin, row_sort="auto"):
    """Per-pair hinge counts ``W`` (see the module docstring) from one sort per row.

    Args:
        labels: class ids of shape ``(B,)``.
        distances: ``(B, B)`` non-negative distances (not differentiated); the diagonal is
            ignored.
        margin: the margin ``m``.
        row_sort: ``"merged"`` (sort every row in full), ``"positives"`` (sort only each
            row's positives; ``top_k`` needs the largest class size, which is known when
            running eagerly (TensorFlow, JAX, PyTorch) and in a TensorFlow graph that XLA
            does not compile, but not under XLA or ``jax.jit``) or ``"auto"`` (positives
            where possible and no anchor has more than ``B // 8`` positives, else merged).

    Returns:
        A dict with ``coefficients`` (``(B, B)``: ``c_ij`` at positive pairs, ``-r_ik`` at
        negative pairs, 0 elsewhere), ``num_positive`` and ``num_valid`` (scalars), all in
        the dtype of ``distances``.
    """
    if row_sort not in ROW_SORTS:
        raise ValueError(f"row_sort must be one of {ROW_SORTS}; got {row_sort!r}.")
    dtype = distances.dtype
    b = ops.shape(distances)[0]
    num_positives = class_sizes(labels) - 1
    n = ops.cast(num_positives, dtype)
    num_valid = ops.sum(n * (ops.cast(b - 1, dtype) - n))
    k = ops.maximum(ops.max(num_positives), 1)
    choice, k_now = choose_row_sort(row_sort, b, k)
    if choice == "merged":
        w, num_positive = _merged_pair_coefficients(labels, distances, margin)
    elif choice == "positives":
        w, num_positive = _positives_pair_coefficients(
            labels, distances, margin, num_positives, k if k_now is None else k_now
        )
    else:  # a TensorFlow graph without XLA: decide when it runs
        w, num_positive = ops.cond(
            ops.less_equal(k, _positives_max(b)),
            lambda: _positives_pair_coefficients(labels, distances, margin, num_positives, k),
            lambda: _merged_pair_coefficients(labels, distances, margin),
        )
    return {"coefficients": w, "num_positive": num_positive, "num_valid": num_valid}


def _embedding_gradient(embeddings, distances, coefficients, squared):
    """``sum_ij W_ij d(d_ij)/d e`` for every row of ``embeddings``, in closed form.

    With ``G = W / d`` (``2 W`` when squared), ``grad = (rowsum(G) + colsum(G)) * e -
    G @ e - G^T @ e``; ``G^T @ e`` is formed as ``(e^T @ G)^T`` so that no ``(B, B)``
    transpose is materialised.
    """
    g = 2.0 * coefficients if squared else divide_or_zero(coefficients, distances)
    scale = ops.sum(g, axis=1) + ops.sum(g, axis=0)
    return (
        ops.expand_dims(scale, 1) * embeddings
        - ops.matmul(g, embeddings)
        - ops.transpose(ops.matmul(ops.transpose(embeddings), g))
    )


def batch_all_sorted(labels, embeddings, margin, squared, with_gradient=True, row_sort="auto"):
    """The batch-all statistics of the dense form, in O(B^2) memory. Inputs standardized.

    Args:
        labels: class ids of shape ``(B,)``.
        embeddings: float ``(B, D)``.
        margin: the margin ``m``.
        squared: use squared Euclidean distances.
        with_gradient: attach the analytic gradient to ``loss`` (costs one ``B x B x D``
            matrix product); without it ``loss`` is a constant.
        row_sort: see :func:`pair_coefficients`.

    Returns:
        A dict with ``loss``, ``fraction_positive``, ``num_positive`` and ``num_valid``,
        equal to the dense form's within float32 rounding.
    """
    embeddings_const = ops.stop_gradient(embeddings)
    distances = _distances(embeddings_const, squared)
    stats = pair_coefficients(labels, distances, margin, row_sort)
    w = stats["coefficients"]
    num_positive = stats["num_positive"]
    num_valid = stats["num_valid"]
    denominator = ops.maximum(num_positive, 1.0)
    # sum of hinges = sum_ij W_ij d_ij + m * N, rows first (shorter float32 sums); einsum
    # forms the row dot products without a B x B product tensor.
    hinge_sum = ops.sum(ops.einsum("ij,ij->i", w, distances)) + margin * num_positive
    loss = hinge_sum / denominator
    if with_gradient:
        grad = _embedding_gradient(embeddings_const, distances, w, squared) / denominator
        surrogate = ops.sum(grad * embeddings)
        loss = loss + (surrogate - ops.stop_gradient(surrogate))
    return {
        "loss": loss,
        "fraction_positive": num_positive / ops.maximum(num_valid, 1.0),
        "num_positive": num_positive,
        "num_valid": num_valid,
    }
