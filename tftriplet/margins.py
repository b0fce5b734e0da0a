"""The term of a triple (or of a mined pair): the hinge with its margin, or the soft margin.

For a difference `x = d_ap - d_an` (positive minus negative distance) the term is the hinge
`max(x + m, 0)` or, with the soft margin, `softplus(x)`. Whatever the term, a triple is
*positive* (it counts towards `num_positive` and `fraction_positive`) when `x + m > 0`.
"""

from __future__ import annotations

from typing import NamedTuple

from keras import ops


def check_margin(margin):
    """`margin` as a float, refusing a negative one."""
    margin = float(margin)
    if margin < 0:
        raise ValueError(f"margin must be >= 0; got {margin}.")
    return margin


def softplus(x):
    """`log(1 + exp(x))` without overflow for large `|x|` (exact gradient 1/2 at 0)."""
    positive = ops.greater(x, 0.0)
    x_pos = ops.where(positive, x, 0.0)
    x_neg = ops.where(positive, 0.0, x)
    return ops.where(positive, x_pos + ops.log1p(ops.exp(-x_pos)), ops.log1p(ops.exp(x_neg)))


def term(diff, margin, soft):
    """`max(diff + margin, 0)`, or `softplus(diff)` with the soft margin.

    `relu`, not `maximum(., 0)`: its gradient at a hinge of exactly 0 is 0 on every
    backend (a tie is not a positive triple), where `maximum` passes 1 (TF) or 1/2.
    """
    return softplus(diff) if soft else ops.relu(diff + margin)


def is_positive(diff, margin):
    """`diff + margin > 0`: the triple counts as positive."""
    return ops.greater(diff + margin, 0.0)


class MaskedTerms(NamedTuple):
    """Per-anchor (or per-pair) terms with their flags, each the shape of the differences.

    Attributes:
        terms: the terms, 0 where not counted.
        counted: 1 where counted, else 0.
        positive: 1 where counted and `diff + margin > 0`, else 0.
    """

    terms: object
    counted: object
    positive: object


def masked_terms(diff, mask, margin, soft):
    """The `MaskedTerms` of `diff` where `mask` (flags as 0/1 in the dtype of `diff`)."""
    terms = ops.where(mask, term(diff, margin, soft), ops.zeros_like(diff))
    positive = ops.logical_and(mask, is_positive(diff, margin))
    return MaskedTerms(terms, ops.cast(mask, diff.dtype), ops.cast(positive, diff.dtype))
