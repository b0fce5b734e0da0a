"""Every triple of a block of anchors, as the definition reads: `(A, B, B)` tensors.

For anchors `i` (a block of `A`), positives `j` and negatives `k` the term of a valid
triple is `max(d_ij - d_ik + m, 0)` (`softplus(d_ij - d_ik)` with the soft margin). The
masks are folded into the `(A, B)` rows: the positive side is `-inf` where `j` is not a
positive and the negative side `+inf` where `k` is not a negative, so an invalid triple's
difference is `-inf`, its term 0 and its slope 0, and no `(A, B, B)` mask is built.
`(d_ij + m) - d_ik > 0` exactly when `d_ik < fl(d_ij + m)`, the comparison the counting
kernels (`tftriplet.engine.counting`) make, so on the same distances both count the same
triples.

This is the form for small batches and for the soft margin, which has no counting
shortcut. Memory is `O(A B^2)`.
"""

from __future__ import annotations

from keras import ops

from tftriplet.margins import softplus


def triple_weights(d, rows, margin, soft):
    """Per-pair weights, term sums and positive triples of a block, from every triple.

    Args:
        d: `(A, B)` distances of the anchors' rows.
        rows: the block's `tftriplet.engine.counting.Rows`.
        margin: the margin `m`.
        soft: the soft margin instead of the hinge.

    Returns:
        `(W, terms per row, positive triples per row)`: `W_ij = sum_k t'_ijk` on positive
        pairs and `W_ik = -sum_j t'_ijk` on negative pairs, where `t'` is the derivative of
        a triple's term with respect to `d_ij - d_ik` (`sigmoid` for the soft margin, 1 for
        a positive hinge, 0 for an invalid triple).
    """
    same = rows.same()
    positive = ops.logical_and(same, rows.not_self())
    anchor_positive = ops.where(positive, d if soft else d + margin, float("-inf"))
    anchor_negative = ops.where(rows.negative(same), d, float("inf"))
    diff = ops.expand_dims(anchor_positive, 2) - ops.expand_dims(anchor_negative, 1)
    if soft:
        terms = softplus(diff)
        slope = ops.sigmoid(diff)  # 0 where the triple is not valid (diff = -inf)
        positives = ops.sign(ops.relu(diff + margin))
    else:
        # relu: a hinge of exactly 0 is not positive, and its slope is 0
        terms = ops.relu(diff)
        slope = positives = ops.sign(terms)
    w = ops.sum(slope, axis=2) - ops.sum(slope, axis=1)
    return w, ops.sum(ops.sum(terms, axis=2), axis=1), ops.sum(ops.sum(positives, axis=2), axis=1)
