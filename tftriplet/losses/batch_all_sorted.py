"""Exact batch-all triplet loss in O(B^2) memory (O(block B) in anchor blocks) and
O(B^2 log B) time.

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

**Anchor blocks** (:func:`blocked_terms`): the same counts for a block of anchor rows
against the whole batch (the "diagonal" of a row is the column of its anchor), the hinge
sums and the gradient accumulated block by block, by rows (``G_block @ e``) and by columns
(``G_block^T @ e_block``): memory ``O(block B + B D)``, nothing of size ``B x B``. The
cosine distance ``1 - n_i . n_j`` (``n = e / |e|``) takes its gradient through
``d/dn = -(W n + W^T n)`` and the normalisation. The soft margin has no sorting shortcut:
its blocks evaluate every triple of the block, ``(block, B, B)`` tensors.

Reference:
    Hermans, Beyer, Leibe. "In Defense of the Triplet Loss for Person Re-Identification",
    2017, https://arxiv.org/abs/1703.07737 (batch-all, averaged over the non-zero terms).
"""

from __future__ import annotations

import numpy as np
from keras import backend, ops

from tftriplet.backend_ops import (
    add_to_rows,
    bitcast,
    block_loop,
    concrete_int,
    divide_or_zero,
    in_graph_without_xla,
    row_bincount,
    row_searchsorted,
    sorted_searchsorted,
)
from tftriplet.masks import anchor_row_masks, off_diagonal_mask, same_label_mask
from tftriplet.mining import softplus

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


def _row_masks(labels, rows):
    """``(same, off_diagonal)``, bool ``(A, B)``: row ``a`` is anchor ``rows[1][a]`` (its
    label ``rows[0][a]``) against every column; ``rows=None`` means every row of the batch."""
    if rows is None:
        same = same_label_mask(labels)
        return same, off_diagonal_mask(ops.shape(labels)[0])
    row_labels, row_index = rows
    return anchor_row_masks(labels, row_index, row_labels)


def _merged_order_keys(labels, distances, margin, rows=None):
    """Integer sort keys whose descending order is the merged ascending order of each row.

    Positives get ``d_ij + m``, negatives ``d_ik``; a positive precedes a negative of equal
    key. ``key = MAX - 2 * bits(value) - is_negative``: for non-negative floats the bit
    pattern is monotone in the value, and the result never overflows. The diagonal (neither
    positive nor negative) gets the dtype's minimum, so it sorts last in every row.
    """
    int_dtype, int_max = _int_view(backend.standardize_dtype(distances.dtype))
    same, off_diagonal = _row_masks(labels, rows)
    bits = bitcast(ops.where(same, distances + margin, distances), int_dtype)
    base = ops.where(same, ops.cast(int_max, int_dtype), ops.cast(int_max - 1, int_dtype))
    keys = (base - bits) - bits
    return ops.where(off_diagonal, keys, ops.cast(-int_max - 1, int_dtype))


def _merged_pair_coefficients(labels, distances, margin, rows=None):
    """``W`` from one full sort of every row (positives and negatives merged), and the
    number of positive triples of each row.

    ``distances`` is ``(A, B)``: rows of anchors ``rows`` (see :func:`_row_masks`).
    """
    dtype = distances.dtype
    a = ops.shape(distances)[0]
    b = ops.shape(distances)[1]
    sorted_keys, order = ops.top_k(_merged_order_keys(labels, distances, margin, rows), b)
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
    per_row = ops.sum(ops.relu(w_sorted), axis=1)
    # Back to the original column order: a segment sum over flat indices is a scatter
    # (each index occurs once), and on CPU much faster than a scatter op.
    row_start = ops.expand_dims(ops.arange(a, dtype="int32") * ops.cast(b, "int32"), 1)
    flat_index = ops.reshape(ops.cast(order, "int32") + row_start, (-1,))
    coefficients = ops.segment_sum(
        ops.reshape(w_sorted, (-1,)), flat_index, num_segments=a * b, sorted=False
    )
    return ops.reshape(coefficients, (a, b)), per_row


def _positives_pair_coefficients(labels, distances, margin, num_positives, k, rows=None):
    """``W`` from a sort of each row's positives only and a binary search per negative, and
    the number of positive triples of each row.

    ``k`` is the largest number of positives of any anchor (at least 1). Per row the
    positives' keys ``d_ij + m`` are sorted ascending (``top_k`` of their negation, so
    non-positives come last as ``+inf``); for a negative ``s_ik`` = the number of keys
    ``<= d_ik`` (a right-sided binary search), so ``r_ik = n_i - s_ik``; and ``c`` of the
    positive at sorted position ``p`` is the number of negatives with ``s_ik <= p`` (a
    per-row histogram of ``s`` and its prefix sum). Only ``(A, k)`` values are scattered
    back. ``distances`` is ``(A, B)`` and ``num_positives`` ``(A,)``: rows of the anchors
    ``rows`` (see :func:`_row_masks`).
    """
    dtype = distances.dtype
    a = ops.shape(distances)[0]
    same, off_diagonal = _row_masks(labels, rows)
    positive = ops.logical_and(same, off_diagonal)
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
    row_pos = ops.broadcast_to(
        ops.expand_dims(ops.arange(a, dtype="int32"), 1), ops.shape(columns)
    )
    diagonal = row_pos if rows is None else ops.broadcast_to(
        ops.expand_dims(rows[1], 1), ops.shape(columns)
    )
    cols = ops.where(real, ops.cast(columns, "int32"), diagonal)
    scatter_index = ops.reshape(ops.stack([row_pos, cols], axis=-1), (-1, 2))
    w = ops.scatter_update(w, scatter_index, ops.reshape(c, (-1,)))
    return w, ops.sum(c, axis=1)


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
    # initial=1: at least 1, and no error on an empty batch
    k = ops.max(num_positives, initial=1)
    w, per_row = _coefficients(row_sort, b, k, labels, distances, margin, num_positives)
    return {"coefficients": w, "num_positive": ops.sum(per_row), "num_valid": num_valid}


def _coefficients(row_sort, batch_size, k, labels, distances, margin, num_positives, rows=None):
    """``(W, positive triples per row)`` by the kernel :func:`choose_row_sort` picks."""
    choice, k_now = choose_row_sort(row_sort, batch_size, k)
    if choice == "merged":
        return _merged_pair_coefficients(labels, distances, margin, rows)
    if choice == "positives":
        return _positives_pair_coefficients(
            labels, distances, margin, num_positives, k if k_now is None else k_now, rows
        )
    # a TensorFlow graph without XLA: decide when it runs
    return ops.cond(
        ops.less_equal(k, _positives_max(batch_size)),
        lambda: _positives_pair_coefficients(labels, distances, margin, num_positives, k, rows),
        lambda: _merged_pair_coefficients(labels, distances, margin, rows),
    )


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


def with_gradient_of(value, gradient, embeddings):
    """``value`` whose gradient with respect to ``embeddings`` is ``gradient``.

    ``value + sum(stop_gradient(gradient) * e) - stop_gradient(same)``: the value is
    unchanged and the gradient is ``gradient`` on every Keras backend.
    """
    surrogate = ops.sum(ops.stop_gradient(gradient) * embeddings)
    return value + (surrogate - ops.stop_gradient(surrogate))


def uses_whole_matrices(batch_size, distance="euclidean", anchor_block=None):
    """Whether :func:`batch_all_sorted` computes on whole ``(B, B)`` matrices: for a static
    batch size up to :data:`WHOLE_MATRIX_MAX_BATCH` with Euclidean distances and no
    ``anchor_block``; else in anchor blocks."""
    b = concrete_int(batch_size) if batch_size is not None else None
    return (
        anchor_block is None
        and distance in ("euclidean", "squared_euclidean")
        and b is not None
        and b <= WHOLE_MATRIX_MAX_BATCH
    )


def batch_all_sorted(
    labels,
    embeddings,
    margin,
    squared,
    with_gradient=True,
    row_sort="auto",
    anchor_block=None,
    distance=None,
):
    """The batch-all statistics of the dense form without ``B^3`` tensors. Inputs
    standardized.

    Up to :data:`WHOLE_MATRIX_MAX_BATCH` samples (static batch size, Euclidean distances)
    on whole ``(B, B)`` matrices, ``O(B^2)`` memory; else (and whenever ``anchor_block`` is
    given) in blocks of anchor rows (:func:`blocked_terms`), ``O(block B + B D)`` memory.

    Args:
        labels: class ids of shape ``(B,)``.
        embeddings: float ``(B, D)``.
        margin: the margin ``m``.
        squared: use squared Euclidean distances.
        with_gradient: attach the analytic gradient to ``loss`` (costs one ``B x B x D``
            matrix product); without it ``loss`` is a constant.
        row_sort: see :func:`pair_coefficients`.
        anchor_block: anchors per block (a positive int), or None: chosen from ``B``.
        distance: ``"euclidean"``, ``"squared_euclidean"`` or ``"cosine"``; None follows
            ``squared``.

    Returns:
        A dict with ``loss``, ``fraction_positive``, ``num_positive`` and ``num_valid``,
        equal to the dense form's within float32 rounding.
    """
    if distance is None:
        distance = "squared_euclidean" if squared else "euclidean"
    squared = distance == "squared_euclidean"
    anchor_block = check_anchor_block(anchor_block)
    embeddings_const = ops.stop_gradient(embeddings)
    b_now = concrete_int(ops.shape(embeddings)[0])
    if b_now == 0:
        zero = ops.sum(embeddings_const) * 0.0
        return {"loss": zero + ops.sum(embeddings) * 0.0, "fraction_positive": zero,
                "num_positive": zero, "num_valid": zero}
    if not uses_whole_matrices(b_now, distance, anchor_block):
        stats = blocked_terms(
            labels, embeddings, margin, distance, anchor_block=anchor_block,
            with_gradient=with_gradient, row_sort=row_sort,
        )
        num_positive, num_valid = stats["num_positive"], stats["num_valid"]
        denominator = ops.maximum(num_positive, 1.0)
        loss = stats["terms"] / denominator
        if with_gradient:
            loss = with_gradient_of(loss, stats["gradient"] / denominator, embeddings)
        return {
            "loss": loss,
            "fraction_positive": num_positive / ops.maximum(num_valid, 1.0),
            "num_positive": num_positive,
            "num_valid": num_valid,
        }
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
        loss = with_gradient_of(loss, grad, embeddings)
    return {
        "loss": loss,
        "fraction_positive": num_positive / ops.maximum(num_valid, 1.0),
        "num_positive": num_positive,
        "num_valid": num_valid,
    }


# --- anchor blocks ------------------------------------------------------------------------

#: With ``anchor_block=None`` a batch of at most this many samples is computed on whole
#: ``(B, B)`` matrices (:func:`batch_all_sorted`), a larger one in anchor blocks
#: (docs/performance.md).
WHOLE_MATRIX_MAX_BATCH = 2048

#: The automatic anchor block keeps each ``(block, B)`` tensor near this many entries.
AUTO_BLOCK_ENTRIES = 2**21

#: The soft margin's automatic anchor block keeps each ``(block, B, B)`` tensor near this
#: many entries.
AUTO_SOFT_BLOCK_ENTRIES = 2**22


def check_anchor_block(anchor_block):
    """``anchor_block`` if it is None or a positive int, else a ``ValueError``."""
    if anchor_block is None:
        return None
    if isinstance(anchor_block, bool) or not isinstance(anchor_block, (int, np.integer)):
        raise ValueError(
            "anchor_block must be None (chosen from the batch size) or a positive integer; "
            f"got {anchor_block!r}."
        )
    if anchor_block < 1:
        raise ValueError(f"anchor_block must be at least 1; got {anchor_block}.")
    return int(anchor_block)


def auto_anchor_block(batch_size, soft=False):
    """The anchor block ``anchor_block=None`` means for ``batch_size`` (an int or None).

    A power of two that keeps each ``(block, B)`` tensor (``(block, B, B)`` with the soft
    margin) near :data:`AUTO_BLOCK_ENTRIES` (:data:`AUTO_SOFT_BLOCK_ENTRIES`) entries, at
    least 1. None for an unknown batch size: the block is then computed when the graph
    runs (:func:`_block_size`).
    """
    if batch_size is None:
        return None
    budget, per_row = (
        (AUTO_SOFT_BLOCK_ENTRIES, batch_size * batch_size) if soft
        else (AUTO_BLOCK_ENTRIES, batch_size)
    )
    block = 1
    while block * 2 * per_row <= budget:
        block *= 2
    return block


def _block_size(anchor_block, num_anchors, batch_size, soft, max_block=None):
    """The block: ``anchor_block`` (or the automatic one, at most ``max_block``) capped at
    the number of anchors, at least 1; a Python int when the sizes are known, else a scalar
    tensor."""
    a_now, b_now = concrete_int(num_anchors), concrete_int(batch_size)
    if anchor_block is None:
        anchor_block = auto_anchor_block(b_now, soft)
        if anchor_block is not None and max_block is not None:
            anchor_block = min(anchor_block, max_block)
    if a_now is not None and anchor_block is not None:
        return max(min(anchor_block, a_now), 1)
    if anchor_block is None:  # unknown batch size: the same rule, as a tensor
        b = ops.maximum(ops.cast(batch_size, "int32"), 1)
        per_row = b * b if soft else b
        budget = AUTO_SOFT_BLOCK_ENTRIES if soft else AUTO_BLOCK_ENTRIES
        anchor_block = ops.maximum(budget // per_row, 1)
        if max_block is not None:
            anchor_block = ops.minimum(anchor_block, max_block)
    return ops.maximum(ops.minimum(anchor_block, ops.cast(num_anchors, "int32")), 1)


def _dense_block_coefficients(labels, distances, margin, rows, soft):
    """Every triple of a block of anchors, from ``(A, B, B)`` tensors (as
    :mod:`~tftriplet.losses.batch_all_dense` does for the whole batch).

    Returns ``(W, term sum per row, positive triples per row)``: ``W_ij = sum_k t'_ijk`` on
    positive pairs and ``W_ik = -sum_j t'_ijk`` on negative pairs, where ``t'`` is the
    derivative of a triple's term with respect to ``d_ij - d_ik`` (``sigmoid`` for the soft
    margin, 1 for a positive hinge, 0 for an invalid triple).
    """
    same, off_diagonal = _row_masks(labels, rows)
    positive = ops.logical_and(same, off_diagonal)
    shifted = distances if soft else distances + margin
    anchor_positive = ops.where(positive, shifted, float("-inf"))
    anchor_negative = ops.where(same, float("inf"), distances)
    diff = ops.expand_dims(anchor_positive, 2) - ops.expand_dims(anchor_negative, 1)
    if soft:
        terms = softplus(diff)
        slope = ops.sigmoid(diff)  # 0 where the triple is not valid (diff = -inf)
        positives = ops.sign(ops.relu(diff + margin))
    else:
        terms = ops.relu(diff)
        slope = positives = ops.sign(terms)
    w = ops.sum(slope, axis=2) - ops.sum(slope, axis=1)
    per_row = ops.sum(ops.sum(terms, axis=2), axis=1)
    return w, per_row, ops.sum(ops.sum(positives, axis=2), axis=1)


def blocked_terms(
    labels,
    embeddings,
    margin,
    distance="euclidean",
    soft=False,
    anchor_index=None,
    anchor_block=None,
    with_gradient=True,
    row_sort="auto",
    per_triple=False,
    max_block=None,
):
    """Batch-all sums over anchors, in blocks of anchor rows: ``O(block B + B D)`` memory.

    For each block of anchors the ``(block, B)`` rows of the distance matrix give the
    pair coefficients ``W`` (the sorted counts, or the soft margin's slopes from a
    ``(block, B, B)`` tensor); the term sum, the counts and the gradient ``sum W dd/de``
    (rows through ``G @ e``, columns through ``G^T @ e``) are accumulated, so no ``(B, B)``
    tensor exists.

    Args:
        labels: class ids ``(B,)``.
        embeddings: float ``(B, D)`` (not differentiated here).
        margin: the margin ``m``.
        distance: ``"euclidean"``, ``"squared_euclidean"`` or ``"cosine"``.
        soft: the soft margin.
        anchor_index: int32 ``(A,)`` anchors (distinct rows), or None for every row.
        anchor_block: anchors per block, or None (chosen from ``B``).
        with_gradient: also return the gradient.
        row_sort: the hinge's counting kernel (:func:`pair_coefficients`).
        per_triple: evaluate every triple of a block (``(block, B, B)`` tensors) instead
            of counting by sorting; always so with the soft margin.
        max_block: an upper bound on the automatic block (None: none).

    Returns:
        A dict: ``terms`` (the sum of the anchors' terms), ``num_positive`` (their positive
        triples), ``num_valid`` (their valid triples) and ``gradient`` (``(B, D)``, the
        gradient of ``terms`` with respect to ``embeddings``, or None).
    """
    e = ops.stop_gradient(embeddings)
    dtype = e.dtype
    b = ops.shape(e)[0]
    all_anchors = anchor_index is None
    if all_anchors:
        anchor_index = ops.arange(b, dtype="int32")
    anchor_index = ops.cast(anchor_index, "int32")
    num_anchors = ops.shape(anchor_index)[0]
    num_positives = class_sizes(labels) - 1
    anchor_positives = ops.take(num_positives, anchor_index)
    n = ops.cast(anchor_positives, dtype)
    num_valid = ops.sum(n * (ops.cast(b - 1, dtype) - n))
    k = ops.max(anchor_positives, initial=1)
    per_triple = per_triple or soft
    block = _block_size(anchor_block, num_anchors, b, per_triple, max_block)
    a_now, block_now = concrete_int(num_anchors), concrete_int(block)
    if a_now is not None and block_now is not None:
        num_blocks = -(-a_now // block_now)
    else:
        num_blocks = (ops.cast(num_anchors, "int32") + block - 1) // block
    cosine = distance == "cosine"
    if cosine:
        sq_norm = ops.sum(ops.square(e), axis=1, keepdims=True)
        nonzero = ops.greater(sq_norm, 0.0)
        inv_norm = ops.where(nonzero, ops.rsqrt(ops.where(nonzero, sq_norm, 1.0)), 0.0)
        points = e * inv_norm  # l2_normalize: a zero row stays zero
    else:
        points = e
        sq_norm = ops.sum(ops.square(e), axis=1)
    points_t = ops.transpose(points)
    # Rows are gathered from copies with one more (zero) row, and rows are added into an
    # accumulator of B + 1 rows: then no gather or scatter ever sees an empty tensor, which
    # XLA cannot compile when the batch size is unknown when tracing (an empty batch).
    anchor_rows = ops.concatenate([anchor_index, ops.zeros((1,), "int32")], axis=0)
    def one_more(x):
        return ops.concatenate([x, ops.zeros((1, *ops.shape(x)[1:]), x.dtype)], axis=0)

    row_points_of = one_more(points)
    row_labels_of = one_more(labels)
    row_positives_of = one_more(num_positives)
    if not cosine:
        row_sq_norm_of = one_more(sq_norm)

    def block_distances(rows, row_points):
        if cosine:
            return ops.clip(1.0 - ops.matmul(row_points, points_t), 0.0, 2.0)
        minus_two_dot = ops.matmul(-2.0 * row_points, points_t)
        sq = ops.expand_dims(ops.take(row_sq_norm_of, rows), 1) + minus_two_dot
        sq = ops.maximum(sq + ops.expand_dims(sq_norm, 0), 0.0)
        return sq if distance == "squared_euclidean" else ops.sqrt(sq)

    def body(i, carry):
        start_wanted = i * block
        start = ops.maximum(ops.minimum(start_wanted, num_anchors - block), 0)
        position = start + ops.arange(block, dtype="int32")
        # The last block is moved back to end at the last anchor; rows it shares with the
        # block before count once.
        fresh = ops.greater_equal(position, start_wanted)
        rows = ops.take(anchor_rows, position)
        row_points = ops.take(row_points_of, rows, axis=0)
        d = block_distances(rows, row_points)
        block_rows = (ops.take(row_labels_of, rows), rows)
        if per_triple:
            w, terms, positives = _dense_block_coefficients(labels, d, margin, block_rows, soft)
        else:
            w, positives = _coefficients(
                row_sort, b, k, labels, d, margin, ops.take(row_positives_of, rows), block_rows
            )
            terms = ops.einsum("ij,ij->i", w, d) + margin * positives
        zero = ops.zeros((), dtype)
        out = [
            carry[0] + ops.sum(ops.where(fresh, terms, zero)),
            carry[1] + ops.sum(ops.where(fresh, positives, zero)),
        ]
        if with_gradient:
            by_rows, by_columns, column_scale = carry[2], carry[3], carry[4]
            keep = ops.expand_dims(ops.cast(fresh, dtype), 1)
            if cosine:
                g = w
            elif distance == "squared_euclidean":
                g = 2.0 * w
            else:
                g = divide_or_zero(w, d)
            fresh_points = row_points * keep
            # columns: G^T @ rows, as (rows^T @ G)^T (no (block, B) transpose)
            by_columns = by_columns - ops.transpose(ops.matmul(ops.transpose(fresh_points), g))
            row_part = ops.matmul(g, points)
            if not cosine:
                column_scale = column_scale + ops.squeeze(ops.matmul(ops.transpose(keep), g), 0)
                row_part = row_part - ops.expand_dims(ops.sum(g, axis=1), 1) * row_points
            by_rows = add_to_rows(by_rows, rows, -row_part * keep)
            out += [by_rows, by_columns, column_scale]
        return tuple(out)

    zero = ops.zeros((), dtype)
    initial = (zero, zero)
    if with_gradient:
        initial += (
            ops.zeros_like(row_points_of),
            ops.zeros_like(points),
            ops.zeros((b,), dtype),
        )
    carry = block_loop(num_blocks, body, initial)
    gradient = None
    if with_gradient:
        by_rows, by_columns, column_scale = carry[2], carry[3], carry[4]
        accumulated = by_rows[:-1] + by_columns
        if cosine:
            # accumulated = d terms / d normalized rows; through the normalisation
            radial = ops.sum(accumulated * points, axis=1, keepdims=True)
            gradient = (accumulated - radial * points) * inv_norm
        else:
            gradient = accumulated + ops.expand_dims(column_scale, 1) * e
    return {
        "terms": carry[0],
        "num_positive": carry[1],
        "num_valid": num_valid,
        "gradient": gradient,
    }
