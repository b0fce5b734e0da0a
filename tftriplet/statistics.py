"""What every strategy returns: sums over its triples, the normaliser, the statistics dict.

A kernel (batch-all's engine, batch-hard's and semi-hard's mining) returns `TripletSums`:
the sum of the terms of what it counted (valid triples, anchors or anchor-positive pairs),
how many it counted, how many of those are positive, and, for analytic kernels, the
gradient of the sum. The loss divides the sum by a normaliser, written once here:

- the number of positive terms for batch-all with the hinge (FaceNet; the mean over the
  non-zero terms, pytorch-metric-learning's `AvgNonZeroReducer`),
- the number of counted terms otherwise (the soft margin, batch-hard, semi-hard),

at least 1, so that nothing counted gives 0, never NaN.
"""

from __future__ import annotations

from typing import NamedTuple

from keras import ops

from tftriplet.backend_ops import with_gradient_of


class TripletSums(NamedTuple):
    """Sums over the terms a kernel counted.

    Attributes:
        terms: scalar, the sum of the terms.
        num_counted: scalar, how many terms were counted (valid triples, anchors with a
            positive and a negative, or anchor-positive pairs with a negative).
        num_positive: scalar, how many of them have `d_ap - d_an + margin > 0`.
        gradient: `(B, D)`, the gradient of `terms` with respect to the embeddings
            (analytic kernels), or None where `terms` is differentiable itself.
    """

    terms: object
    num_counted: object
    num_positive: object
    gradient: object = None


def over_positive(strategy, soft):
    """Whether `strategy`'s loss is the mean over its positive terms (batch-all's hinge)
    rather than over every counted term."""
    return strategy == "batch_all" and not soft


def normalising_count(sums, by_positive):
    """The count the loss divides by: `num_positive` or `num_counted`."""
    return sums.num_positive if by_positive else sums.num_counted


def normaliser(sums, by_positive):
    """`max(normalising_count, 1)`: nothing counted gives a loss of 0, never NaN."""
    return ops.maximum(normalising_count(sums, by_positive), 1.0)


def mean(sums, by_positive, embeddings=None):
    """The loss: `terms / normaliser`, carrying `sums.gradient` (w.r.t. `embeddings`)."""
    denominator = normaliser(sums, by_positive)
    loss = sums.terms / denominator
    if sums.gradient is not None:
        loss = with_gradient_of(loss, sums.gradient / denominator, embeddings)
    return loss


def statistics(sums, by_positive, count_name, embeddings=None, fraction=False):
    """The statistics dict of a strategy: `loss`, `count_name`, `num_positive` and, with
    `fraction`, `fraction_positive` (`num_positive / max(num_counted, 1)`)."""
    stats = {
        "loss": mean(sums, by_positive, embeddings),
        count_name: sums.num_counted,
        "num_positive": sums.num_positive,
    }
    if fraction:
        stats["fraction_positive"] = fraction_positive(sums)
    return stats


def fraction_positive(sums):
    """`num_positive / max(num_counted, 1)`: 0 when nothing is counted."""
    return sums.num_positive / ops.maximum(sums.num_counted, 1.0)


def sum_parts(parts):
    """`TripletSums` of per-anchor (or per-pair) `tftriplet.margins.MaskedTerms`."""
    return TripletSums(ops.sum(parts.terms), ops.sum(parts.counted), ops.sum(parts.positive))
